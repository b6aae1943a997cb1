"""Errors of the lab tool.

Every failure is raised as a :class:`LabError` subclass whose message is one line saying what
failed, on which host and where to look (a log file), so the CLI can print it as
``lab: error: ...`` without a traceback. No state is kept in the exceptions beyond the message.
"""


class LabError(Exception):
    """Base class of every error the lab raises on purpose."""


class InstallError(LabError):
    """A package, the kernel, the guest /init or the initramfs could not be installed."""


class HostError(LabError):
    """A lab host (namespaced libvirtd) could not be started, reached or configured."""


class GuestError(LabError):
    """A test guest could not be defined, started, found or stopped."""


class TeardownError(LabError):
    """``stop`` left a lab process or a lab mount behind."""


class LabTimeout(LabError):
    """A bounded wait (a command, a libvirt call, a readiness poll) ran out of time."""
