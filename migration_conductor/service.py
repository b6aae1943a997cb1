"""The conductor service: its database and its RPC server.

At start the conductor checks its database before it serves anything: an empty embedded
SQLite database is created at the newest schema (the all-in-one default needs no step);
any other database must already be at the newest schema
(``migration-conductor-manage db upgrade``), otherwise the service refuses to start with
a one-line message.

Several conductors may serve the same topic (each is a server of its own host name); the
database's conditional updates keep them consistent.
"""

import logging
import os

import oslo_messaging as messaging

from compute_agent import rpcapi as agent_rpcapi
from db import api as db_api
from db import migration as db_migration
from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor import manager as conductor_manager
from migration_conductor import migration_api
from migration_conductor import rpc
from migration_conductor.flows import persistence as flow_persistence
from migration_conductor.flows import runner as flow_runner
from migration_conductor.flows.tasks import base as task_base

LOG = logging.getLogger(__name__)


def prepare_database(conf):
    """Configure the DB API, creating an empty embedded SQLite DB at the newest schema.

    :raises ConfigurationError: the DB cannot be reached or is not at the newest schema.
    """
    url = conf.database.connection
    if url.startswith('sqlite:///') and not url.startswith('sqlite:////:memory'):
        directory = os.path.dirname(url[len('sqlite:///'):])
        if directory:
            os.makedirs(directory, exist_ok=True)
    current = db_migration.version(url)
    head = db_migration.head()
    if current is None and url.startswith('sqlite'):
        LOG.info('Creating the embedded database at %s', url)
        db_migration.upgrade(url)
    elif current != head:
        raise exception.ConfigurationError(
            setting='[database] connection',
            reason='%s is at schema version %s, this conductor needs %s: run '
                   '"migration-conductor-manage db upgrade"'
                   % (db_migration.mask_password(url), current or 'none (empty)', head))
    # taskflow owns the schema of its persistence tables; bringing them up to date is
    # idempotent and cheap.
    flow_persistence.upgrade_persistence(url)
    db_api.configure(url)


class ConductorService:
    """Serves the conductor topic until :meth:`stop`."""

    def __init__(self, conf):
        self._conf = conf
        self.runner = None
        self.manager = None
        self._server = None

    def start(self):
        prepare_database(self._conf)
        context = mc_context.get_admin_context()
        agents = agent_rpcapi.AgentAPI(self._conf)
        job_events = task_base.JobEvents()
        self.runner = flow_runner.FlowRunner(
            self._conf, task_base.Services(self._conf, agents, context, job_events))
        self.manager = conductor_manager.ConductorManager(
            self._conf, migration_api.MigrationAPI(self._conf, self.runner, agents,
                                                   context, job_events))
        target = messaging.Target(topic=self._conf.conductor.topic, server=self._conf.host)
        self._server = rpc.get_server(self._conf, target, [self.manager])
        self._server.start()
        LOG.info('Conductor serving on topic %s (transport %s)',
                 self._conf.conductor.topic, rpc.mask_url(self._conf.transport_url))
        resumed = self.runner.resume_unfinished()
        if resumed:
            LOG.info('Resumed %d unfinished migration(s): %s', len(resumed),
                     ', '.join(resumed))

    def stop(self):
        if self._server is not None:
            self._server.stop()
            self._server.wait()
            self._server = None
        if self.runner is not None:
            self.runner.stop()
        LOG.info('Conductor stopped')
