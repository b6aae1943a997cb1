"""All-in-one mode: the conductor and several agents in one process.

This is the embedded default: with the in-process ``fake:/`` transport and the SQLite
database, one process runs the conductor and one agent per ``[all_in_one] agents`` entry,
each with its own host name and virt driver, talking over RPC exactly as separate
services would. ``migration-conductor`` runs it as a service; ``migctl`` runs it for the
duration of one command when the transport is in-process.
"""

import logging

from compute_agent import service as agent_service
from compute_agent.virt import factory
from migration_conductor import exception
from migration_conductor import service as conductor_service

LOG = logging.getLogger(__name__)


def parse_agents(entries):
    """Parse ``HOST=URI`` items; return a list of (host, uri).

    :raises ConfigurationError: an item is malformed or a host name repeats.
    """
    agents = []
    seen = set()
    for entry in entries:
        host, sep, uri = entry.partition('=')
        host, uri = host.strip(), uri.strip()
        if not sep or not host or not uri:
            raise exception.ConfigurationError(
                setting='[all_in_one] agents',
                reason='%r is not of the form HOST=URI' % entry)
        if host in seen:
            raise exception.ConfigurationError(
                setting='[all_in_one] agents', reason='host %s is listed twice' % host)
        seen.add(host)
        agents.append((host, uri))
    return agents


class AllInOne:
    """Conductor plus in-process agents; start() returns once every agent registered."""

    def __init__(self, conf):
        self._conf = conf
        self.conductor = conductor_service.ConductorService(conf)
        self.agents = [
            agent_service.AgentService(conf, host, factory.load_driver(conf, host, uri))
            for host, uri in parse_agents(conf.all_in_one.agents)]

    def start(self):
        """Start the conductor, then every agent.

        :raises ConfigurationError: an agent's libvirtd cannot be reached (the
            services already started are stopped again).
        """
        self.conductor.start()
        started = []
        try:
            for agent in self.agents:
                try:
                    agent.start(register_timeout=self._conf.all_in_one.startup_timeout)
                except exception.HypervisorUnavailable as exc:
                    raise exception.ConfigurationError(
                        setting='[all_in_one] agents (host %s)' % agent.host,
                        reason=str(exc)) from exc
                started.append(agent)
        except Exception:
            for agent in reversed(started):
                agent.stop()
            self.conductor.stop()
            raise
        LOG.info('All-in-one: conductor and %d agent(s) running: %s',
                 len(self.agents), ', '.join(a.host for a in self.agents))

    def stop(self):
        for agent in reversed(self.agents):
            agent.stop()
        self.conductor.stop()
