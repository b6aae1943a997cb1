"""Options of the [DEFAULT] group that belong to this project.

``transport_url`` and the other messaging options are registered by oslo.messaging
itself (see :mod:`migration_conductor.rpc`); its default here is the in-process transport
of the all-in-one mode.
"""

import socket

from oslo_config import cfg

DEFAULT_TRANSPORT_URL = 'fake:/'

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
