"""The conductor service: its database and its RPC server.

At start the conductor checks its database before it serves anything: an empty embedded
SQLite database is created at the newest schema (the all-in-one default needs no step);
any other database must already be at the newest schema
(``migration-conductor-manage db upgrade``), otherwise the service refuses to start with
a one-line message.

Without a jobboard a conductor drives every migration of its database, so it first
takes the conductor lock (:mod:`migration_conductor.conductor_lock`): a second one
refuses to start with one line naming the first. With ``[conductor] jobboard_url``
several conductors serve the same topic (each a server of its own host name) and share
the migrations through the jobboard; the database's conditional updates (statuses, the
owner's generation, the slots) keep them consistent.
"""

import logging
import os

import oslo_messaging as messaging

from compute_agent import rpcapi as agent_rpcapi
from db import api as db_api
from db import migration as db_migration
from migration_conductor import conductor_lock
from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor import job_reports
from migration_conductor import manager as conductor_manager
from migration_conductor import migration_api
from migration_conductor import profiles as migration_profiles
from migration_conductor import rpc
from migration_conductor import slots as migration_slots
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
        self.profiles = None
        self.slots = None
        self._server = None
        self._lock = None

    def start(self):
        """Check the database, take the conductor lock (no jobboard), serve, resume.

        :raises ConfigurationError: a migration profile is wrong, the database is not
            usable, or (ConductorLocked) another conductor without a jobboard drives it.
        """
        self.profiles = migration_profiles.load(self._conf)
        prepare_database(self._conf)
        context = mc_context.get_service_context()
        if not self._conf.conductor.jobboard_url:
            self._lock = conductor_lock.ConductorLock(
                self._conf.database.connection,
                conductor_lock.holder_name(self._conf), context)
            self._lock.acquire()
        try:
            self._start(context)
        except BaseException:
            self.stop()
            raise

    def _start(self, context):
        agents = agent_rpcapi.AgentAPI(
            self._conf, service_version_of=lambda host: _service_version(context, host))
        events = job_reports.JobEvents()
        self.slots = migration_slots.SlotQueue(self._conf, context)
        self.runner = flow_runner.FlowRunner(
            self._conf, task_base.Services(self._conf, agents, context, events,
                                           slots=self.slots, profiles=self.profiles))
        self.manager = conductor_manager.ConductorManager(
            self._conf, migration_api.MigrationAPI(self._conf, self.runner, agents,
                                                   context, self.slots, self.profiles),
            job_reports.JobReports(context, events), self.profiles)
        target = messaging.Target(topic=self._conf.conductor.topic, server=self._conf.host)
        self._server = rpc.get_server(self._conf, target, [self.manager])
        self._server.start()
        LOG.info('Conductor serving on topic %s (transport %s)',
                 self._conf.conductor.topic, rpc.mask_url(self._conf.transport_url))
        self.slots.start()
        resumed = self.runner.resume_unfinished()
        if resumed:
            LOG.info('Resumed %d unfinished migration(s): %s', len(resumed),
                     ', '.join(resumed))

    def stop(self):
        if self._server is not None:
            self._server.stop()
            self._server.wait()
            self._server = None
        if self.slots is not None:
            self.slots.stop()
        if self.runner is not None:
            self.runner.stop()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        LOG.info('Conductor stopped')


def _service_version(context, host):
    """The service version the agent of ``host`` last reported (None: unknown)."""
    try:
        return db_api.compute_host_get(context, host)['service_version']
    except exception.HostNotFound:
        return None
