"""Options of the [DEFAULT] group that belong to this project.

``transport_url`` and the other messaging options belong to oslo.messaging and are
registered by :func:`migration_conductor.rpc.register_opts`, which makes the in-process
transport of the all-in-one mode (``fake:/``) the default.
"""

import socket

from oslo_config import cfg

default_opts = [
    cfg.StrOpt('host',
               default=socket.gethostname(),
               sample_default='<current hostname>',
               help='Name of this service\'s host. An agent reports itself under this '
                    'name and listens on the RPC server of that name; it must be unique '
                    'among the agents of one deployment.'),
    cfg.StrOpt('state_path',
               default='/var/lib/migration-conductor',
               help='Directory where the services keep their local state, such as the '
                    'embedded SQLite database of the all-in-one mode.'),
]


def register_opts(conf):
    conf.register_opts(default_opts)


def list_opts():
    return {'DEFAULT': default_opts}
