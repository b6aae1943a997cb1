"""One compute agent: its RPC server, registration and heartbeats.

Start-up order: connect to the hypervisor (fail fast with the URI in the message), start
the RPC server on ``[agent] topic`` with this host's name as server, register with the
conductor (a call, retried until the conductor answers), ask the conductor which
migrations concern this host (a call): restore the claims of those coming here and
watch again the jobs of those leaving (a job found running in libvirt after a restart
is reported again by this agent's monitor), then report every ``[agent]
heartbeat_interval`` seconds (casts) from a futurist periodic worker thread, which also
compares the claims held with the conductor's list every ``[agent]
claims_reconcile_interval`` seconds.

The agent calls the conductor with a service context (role ``service``, not admin):
the conductor's policy lets it report, and refuses it every operator method.

Reports of running jobs (:class:`JobReporter`) are casts sent without retrying: one that
is lost (the broker restarting) is followed by the next one, and the conductor asks the
agent when it hears nothing for too long.

NOTE: the claims cannot be restored before the RPC server starts: the agent registers
(and so is known to answer) only once it serves. Between the server's start and the
restore, a pre-check or claim from the conductor waits in the resource tracker (at most
``[agent] claims_restore_timeout`` seconds, then it is refused and the conductor tries
another destination), so it is never served with a forgotten claim; a release is served
at once and the restore does not bring that claim back.

Several agents may live in one process (all-in-one mode, tests): nothing here reads
``[DEFAULT] host`` or the libvirt URI directly; the caller passes the host and driver.
"""

import logging
import threading
import time

from futurist import periodics
import oslo_messaging as messaging

from compute_agent import manager as agent_manager
from migration_conductor import context as mc_context
from migration_conductor import exception
from migration_conductor import rpc
from migration_conductor import rpcapi as conductor_rpcapi

LOG = logging.getLogger(__name__)

_REGISTER_CALL_TIMEOUT = 10
# Seconds a stopping agent waits for a periodic report in flight to end.
_STOP_PERIODICS_TIMEOUT = 1


class AgentService:
    """Runs the agent of ``host`` with ``driver`` until :meth:`stop`."""

    def __init__(self, conf, host, driver):
        self._conf = conf
        self.host = host
        self.driver = driver
        self._conductor = conductor_rpcapi.ConductorAPI(conf, 'agent:%s' % host)
        self._context = mc_context.get_service_context()
        self.reporter = JobReporter(self._conductor, self._context)
        self.manager = agent_manager.AgentManager(host, driver, conf,
                                                  reporter=self.reporter)
        self._server = None
        self._worker = None
        self._worker_thread = None
        self._stopping = threading.Event()
        self.registered = threading.Event()

    def start(self, register_timeout=None):
        """Connect, serve and register.

        :param register_timeout: seconds to keep trying to register; None waits forever.
        :raises HypervisorUnavailable: the hypervisor cannot be reached.
        :raises MessagingTimeout: the conductor did not answer within register_timeout.
        """
        self.driver.init_host()
        target = messaging.Target(topic=self._conf.agent.topic, server=self.host)
        self._server = rpc.get_server(self._conf, target, [self.manager])
        self._server.start()
        LOG.info('Agent of host %s serving on topic %s', self.host, self._conf.agent.topic)
        try:
            self._register(register_timeout)
        except BaseException:
            self.stop()
            raise
        self._start_heartbeats()

    def _register(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            try:
                recorded = self._conductor.register_host(
                    self._context, self.manager.build_host_report(),
                    timeout=_REGISTER_CALL_TIMEOUT)
            except messaging.MessagingTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                LOG.warning('Host %s: conductor did not answer the registration '
                            '(attempt %d); retrying', self.host, attempt)
                continue
            LOG.info('Host %s registered with the conductor (enabled=%s)',
                     self.host, recorded.enabled)
            self._take_over_migrations()
            self.registered.set()
            return

    def _host_migrations(self):
        return self._conductor.get_host_migrations(self._context, self.host,
                                                   timeout=_REGISTER_CALL_TIMEOUT)

    def reconcile_claims(self):
        """Drop the claims the conductor no longer lists (see ResourceTracker)."""
        asked_at = time.monotonic()
        try:
            listed = self._host_migrations().claims
        except (messaging.MessagingException,
                exception.MigrationConductorError) as exc:
            LOG.warning('Host %s: could not list its claims to compare them (%s); '
                        'trying again later', self.host, exc)
            return []
        return self.manager.tracker.reconcile([c.legacy() for c in listed], asked_at)

    def _take_over_migrations(self):
        """After a (re)start: hold again the claims of migrations towards this host and
        watch again the jobs of migrations leaving it.

        A conductor that cannot list them (older than 1.3, or not answering) does not
        stop the agent: it starts with no claims, and says so; the jobs it does not
        watch are reported when the conductor asks.
        """
        try:
            known = self._host_migrations()
        except (messaging.MessagingException,
                exception.MigrationConductorError) as exc:
            LOG.warning('Host %s: could not list the migrations in flight from or to it '
                        '(%s); serving with no claim, so claims of migrations already in '
                        'flight towards it are not counted', self.host, exc)
            known = None
        claims = [] if known is None else [c.legacy() for c in known.claims]
        restored = self.manager.tracker.restore(claims)
        LOG.info('Host %s: %d claim(s) of migrations in flight restored',
                 self.host, len(restored))
        if known is None:
            return
        for job in known.outgoing:
            if self.manager.jobs.adopt(job.migration_uuid, job.instance_uuid,
                                       known.report_interval):
                LOG.info('Migration %s instance %s: its job still runs on host %s; '
                         'reporting it again', job.migration_uuid, job.instance_uuid,
                         self.host)

    def _start_heartbeats(self):
        interval = self._conf.agent.heartbeat_interval

        @periodics.periodic(spacing=interval, run_immediately=False)
        def report_host_state():
            self.report_now()

        callables = [(report_host_state, None, None)]
        reconcile_interval = self._conf.agent.claims_reconcile_interval
        if reconcile_interval:
            @periodics.periodic(spacing=reconcile_interval, run_immediately=False)
            def reconcile_claims():
                self.reconcile_claims()
            callables.append((reconcile_claims, None, None))
        self._worker = periodics.PeriodicWorker(callables)
        self._worker_thread = threading.Thread(
            target=self._worker.start, name='heartbeat-%s' % self.host, daemon=True)
        self._worker_thread.start()

    def report_now(self):
        """Send one heartbeat now; failures are logged, the next one will retry."""
        try:
            self._conductor.report_host_state(
                self._context, self.manager.build_host_report())
        except Exception:  # a heartbeat must never kill the agent
            LOG.exception('Host %s: heartbeat failed', self.host)

    def stop(self):
        """Stop reporting and serving, and close the hypervisor connection.

        NOTE: a heartbeat or a claims comparison in flight is not waited for: it may be
        a call to a conductor that is gone, waiting out its timeout (that made agents
        take up to 15 s to stop on SIGTERM). Its thread is a daemon, and the jobs it
        could concern live in libvirtd, not here.
        """
        started = time.monotonic()
        self._stopping.set()
        if self._worker is not None:
            self._worker.stop()
            self._worker.wait(timeout=_STOP_PERIODICS_TIMEOUT)
        if self._server is not None:
            self._server.stop()
            self._server.wait()
        self.driver.cleanup()
        LOG.info('Agent of host %s stopped in %.1f s', self.host,
                 time.monotonic() - started)


class JobReporter:
    """Sends the job monitors' reports to the conductor (casts, no retries).

    Called from the job and monitor threads of :mod:`compute_agent.migration_jobs`.
    """

    def __init__(self, conductor, context):
        self._conductor = conductor
        self._context = context

    def progress(self, job):
        """One reading of a running job (``migration_progress``)."""
        self._conductor.migration_progress(self._context, job)

    def ended(self, job):
        """The job's end, the moment it happens (``migration_job_ended``)."""
        self._conductor.migration_job_ended(self._context, job)

    def event(self, event):
        """A decision of the job's monitor (``migration_event``)."""
        self._conductor.migration_event(self._context, event)
