"""Start-up shared by every console script: configuration, logging, clean errors.

A wrong setting must end a command with one line naming the setting, not a traceback:
:func:`run` catches the project's typed errors and oslo.config's errors, prints
``<prog>: error: <message>`` on stderr and exits with status 2.
"""

import os
import sys
import warnings

# oslo.messaging imports oslo.service, which imports the eventlet library (never used
# here): keep its deprecation notice out of operators' terminals.
warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402

from migration_conductor import conf as mc_conf  # noqa: E402
from migration_conductor import exception  # noqa: E402
from migration_conductor import objects  # noqa: E402
from migration_conductor import rpc  # noqa: E402

LOG = logging.getLogger(__name__)
PROJECT = 'migration-conductor'
EXIT_CONFIG_ERROR = 2


def register_all(conf, database=True):
    """Register our options and oslo.log's on ``conf``, and every object.

    :param database: register ``[database]`` too; False for the agent, which must hold
        no database credentials.
    """
    mc_conf.register_opts(conf)
    rpc.register_opts(conf)
    if database:
        mc_conf.register_database_opts(conf)
    logging.register_options(conf)
    objects.register_all()


def setup_logging(conf):
    """Set up oslo.log, creating the directory of ``log_file``/``log_dir`` first.

    :raises ConfigurationError: that directory cannot be created.
    """
    path = conf.log_dir or (os.path.dirname(conf.log_file) if conf.log_file else None)
    if path:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise exception.ConfigurationError(
                setting='[DEFAULT] log_file', reason='cannot create %s: %s'
                % (path, exc.strerror))
    logging.setup(conf, PROJECT)


def prepare_service(conf, argv, prog, database=True):
    """Parse the command line and config files, then set up logging."""
    register_all(conf, database=database)
    conf(argv, project=PROJECT, prog=prog)
    setup_logging(conf)


EXPECTED_ERRORS = (exception.MigrationConductorError, cfg.Error)


def print_error(prog, exc):
    """Print an expected error as the one line an operator reads.

    NOTE: an error raised in the conductor arrives rebuilt by oslo.messaging, whose
    str() appends the server's traceback; ``message`` is the error's own text.
    """
    if isinstance(exc, cfg.Error):
        text = 'configuration: %s' % exc
    else:
        text = getattr(exc, 'message', None) or str(exc).split('\n', 1)[0]
    print('%s: error: %s' % (prog, text), file=sys.stderr)


def run(prog, main, argv=None):
    """Run ``main(argv)``; turn expected errors into one line and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except EXPECTED_ERRORS as exc:
        print_error(prog, exc)
    except KeyboardInterrupt:
        return 130
    return EXIT_CONFIG_ERROR


def wait_for_signal():
    """Block until SIGTERM or SIGINT."""
    import signal
    import threading

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # NOTE: a lock wait is interrupted by a signal on POSIX, so the handler wakes this
    # at once; the timeout is only a safety net.
    while not stop.wait(60):
        pass


# Seconds a service given SIGTERM spends on stopping gracefully before it exits anyway.
STOP_TIMEOUT = 2


def stop_within(prog, timeout, *steps):
    """Run the stopping ``steps`` (callables) in order, for ``timeout`` seconds at most.

    NOTE: oslo.messaging's rabbit listener polls with a timeout that grows to 5 s while
    idle, and both the server's stop and the transport's cleanup wait for it: a
    service took up to 15 s to stop on SIGTERM. Nothing of a migration lives in these
    processes (the jobs live in libvirtd, the flows in the database), so past the
    bound the process exits without the rest, and says so.
    """
    import threading
    import time

    def run():
        for step in steps:
            step()

    started = time.monotonic()
    stopper = threading.Thread(target=run, name='stop', daemon=True)
    stopper.start()
    stopper.join(timeout)
    if stopper.is_alive():
        LOG.info('%s: exiting after %d s of stopping; the messaging listeners still '
                 'polling close with the process', prog, timeout)
    else:
        LOG.info('%s stopped in %.1f s', prog, time.monotonic() - started)
