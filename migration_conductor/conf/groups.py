"""Registering an option group on one ConfigOpts without sharing it with others."""

from oslo_config import cfg


def register(conf, group, opts):
    """Register ``opts`` under a copy of ``group`` on ``conf``.

    NOTE: oslo.config keeps overrides in the OptGroup object's option table, so one
    module-level OptGroup registered on several ConfigOpts (the all-in-one mode, tests,
    several simulated hosts in one process) shares every ``set_override`` between them.
    A fresh OptGroup per ConfigOpts keeps each configuration its own.
    """
    fresh = cfg.OptGroup(group.name, title=group.title, help=group.help)
    conf.register_group(fresh)
    conf.register_opts(opts, group=fresh)
