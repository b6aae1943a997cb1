"""Each RPC client and its endpoint share one version, every client method exists, and
the agent client does not send an older agent what it does not know."""

import inspect
import re

from oslo_config import cfg
import pytest

from compute_agent import manager as agent_manager
from compute_agent import rpcapi as agent_rpcapi
from migration_conductor import cmd
from migration_conductor import exception
from migration_conductor import manager as conductor_manager
from migration_conductor import objects
from migration_conductor import rpc
from migration_conductor import rpcapi as conductor_rpcapi

PAIRS = [
    (conductor_rpcapi, conductor_rpcapi.ConductorAPI, conductor_manager.ConductorManager),
    (agent_rpcapi, agent_rpcapi.AgentAPI, agent_manager.AgentManager),
]


@pytest.mark.parametrize('module,client,endpoint', PAIRS)
def test_client_and_endpoint_versions_agree(module, client, endpoint):
    assert endpoint.target.version == module.RPC_API_VERSION
    history = inspect.getdoc(module)
    assert '* %s - ' % module.RPC_API_VERSION in history, 'no history line for it'


# Public client methods that send nothing: they say what an agent may be sent.
NOT_SENDING = {'version_cap', 'can_send_version', 'reports_progress',
               'block_migration_refusal'}


@pytest.mark.parametrize('module,client,endpoint', PAIRS)
def test_every_client_method_has_an_endpoint(module, client, endpoint):
    public = [name for name, _ in inspect.getmembers(client, inspect.isfunction)
              if not name.startswith('_') and name not in NOT_SENDING]
    assert public
    for name in public:
        source = inspect.getsource(getattr(client, name))
        for helper in ('_disks_kwargs',):
            if helper in source:     # it chooses the version for the method
                source += inspect.getsource(getattr(client, helper))
        # The client sends a message named after itself.
        assert "'%s'" % name in source, name
        assert callable(getattr(endpoint, name, None)), (
            '%s.%s has no endpoint method' % (endpoint.__name__, name))
        prepared = re.findall(r"'(\d+\.\d+)'", source) + (
            [module.TYPED_VERSION] if 'TYPED_VERSION' in source else [])
        assert prepared, '%s does not prepare() a version' % name
        assert all(v <= module.RPC_API_VERSION for v in prepared), (name, prepared)


def _conf(pin=None):
    conf = cfg.ConfigOpts()
    cmd.register_all(conf, database=False)
    conf([], project='migration-conductor-unit-tests')
    if pin:
        conf.set_override('compute_agent', pin, group='upgrade_levels')
    return conf


FACTS = objects.SourceFacts(
    host='src', instance=objects.Instance(uuid='22222222-0000-4000-8000-000000000001',
                                          name='g', host='src', power_state='running',
                                          memory_mb=512, vcpus=1),
    cpu_xml='<cpu/>', hypervisor_type='QEMU', hypervisor_version=7002000,
    disks=objects.DiskList(objects=[]))
MIGRATION = '11111111-0000-4000-8000-000000000001'
INSTANCE = FACTS.instance.uuid


class Agents:
    """An AgentAPI whose agents report ``service_version``; records what it sends and
    answers ``answer`` (nothing crosses a transport)."""

    def __init__(self, monkeypatch, service_version, pin=None, answer=None):
        self.sent = []
        self.answer = answer

        def call(cctxt, context, method, **kwargs):
            self.sent.append((cctxt._cctxt.target.version, method, kwargs))
            return self.answer

        monkeypatch.setattr(rpc._ObservedCallContext, 'call', call)
        self.api = agent_rpcapi.AgentAPI(_conf(pin),
                                         service_version_of=lambda host: service_version)


@pytest.fixture
def agents(monkeypatch):
    yield lambda *args, **kwargs: Agents(monkeypatch, *args, **kwargs)
    rpc.cleanup()


@pytest.mark.parametrize('service_version,pin,version,typed,sends_block_migration', [
    (1, None, '1.1', False, False), (None, None, '1.1', False, False),
    (2, None, '1.2', False, True), (3, None, '1.2', False, True),
    (4, None, '1.4', True, True), (4, '1.3', '1.2', False, True),
    (4, '1.1', '1.1', False, False), (5, None, '1.5', True, True),
    (5, '1.4', '1.4', True, True), (6, None, '1.5', True, True)])
def test_check_destination_sends_each_agent_what_its_version_knows(
        agents, service_version, pin, version, typed, sends_block_migration):
    """The agent's service version and the operator's pin decide; the answer is a
    DestinationCheck whatever the agent answered. An agent of 1.4 gets SourceFacts 1.0
    (as a primitive its serializer turns back into the object), one of 1.5 the
    object itself."""
    sent = agents(service_version, pin=pin, answer={'host': 'h', 'copy_disks': []})
    facts = FACTS.obj_clone()
    facts.dirty_rate = 4 * 1024 * 1024
    check = sent.api.check_destination(None, 'h', MIGRATION, INSTANCE, facts, 'false')
    [(sent_version, method, kwargs)] = sent.sent
    assert (sent_version, method) == (version, 'check_destination')
    source = kwargs['source']
    if version == '1.5':
        assert source is facts
    elif version == '1.4':
        assert source['migration_conductor_object.version'] == '1.0'
        assert 'dirty_rate' not in source['migration_conductor_object.data']
        assert objects.SourceFacts.obj_from_primitive(source).host == 'src'
    else:
        assert source == FACTS.legacy()
    assert ('block_migration' in kwargs) is sends_block_migration
    assert isinstance(check, objects.DestinationCheck) and check.host == 'h'


def _spec(plan=None):
    return objects.MigrationSpec(
        migration_uuid=MIGRATION, instance_uuid=INSTANCE, dest_host='d',
        dest_uri='qemu+tcp://d/system', migrate_uri='tcp://127.0.0.1',
        options=objects.MigrationOptions(bandwidth_mib=32, max_downtime_ms=500,
                                         parallel_connections=1),
        report_interval=1.0, plan=plan)


@pytest.mark.parametrize('service_version,pin,version', [
    (5, None, '1.5'), (4, None, '1.4'), (3, None, '1.1'), (4, '1.3', '1.1'),
    (5, '1.4', '1.4')])
def test_start_sends_each_agent_the_spec_its_version_knows(agents, service_version, pin,
                                                          version):
    """1.5: the spec with its completion plan; 1.4: MigrationSpec 1.0 (no plan, options
    1.0); older: the options dict."""
    sent = agents(service_version, pin=pin,
                  answer={'state': 'running', 'stats': None, 'error': None})
    spec = _spec(plan=objects.CompletionPlan(profile='default', strategy='precopy',
                                             downtime_at_s=[0], downtime_ms=[300]))
    job = sent.api.start_migration(None, 's', spec)
    [(sent_version, method, kwargs)] = sent.sent
    assert (sent_version, method) == (version, 'start_migration')
    if version == '1.5':
        assert kwargs['spec'] is spec
    elif version == '1.4':
        primitive = kwargs['spec']
        assert primitive['migration_conductor_object.version'] == '1.0'
        data = primitive['migration_conductor_object.data']
        assert 'plan' not in data
        options = data['options']
        assert options['migration_conductor_object.version'] == '1.0'
        assert 'parallel_connections' not in options['migration_conductor_object.data']
        assert objects.MigrationSpec.obj_from_primitive(primitive).options.bandwidth_mib \
            == 32
    else:
        assert 'spec' not in kwargs
        assert kwargs['options']['bandwidth_mib'] == 32
        assert kwargs['dest_uri'] == spec.dest_uri
    assert (job.state, job.migration_uuid, job.host) == ('running', MIGRATION, 's')


def test_the_current_agent_service_version_serves_the_current_rpc_version():
    assert agent_rpcapi.SERVICE_VERSION_CAPS[agent_manager.SERVICE_VERSION] == \
        agent_rpcapi.RPC_API_VERSION


DISKS = objects.DiskList(objects=[objects.Disk(target='vdb',
                                               path='/var/lib/guests/a.raw')])


@pytest.mark.parametrize('method', ['cleanup_source', 'rollback_destination'])
@pytest.mark.parametrize('disks,service_version,version,sent_disks', [
    (None, 4, '1.1', None), (objects.DiskList(objects=[]), 4, '1.1', None),
    (DISKS, 3, '1.3', ['/var/lib/guests/a.raw']), (DISKS, 4, '1.4', DISKS)])
def test_disks_to_delete_are_sent_as_each_agent_takes_them(
        agents, method, disks, service_version, version, sent_disks):
    """Only agents of service version 3 on copy disks, so only they get any to delete
    (paths in 1.3, a DiskList in 1.4); without any, the call stays one every agent
    serves."""
    sent = agents(service_version)
    getattr(sent.api, method)(None, 'h', MIGRATION, INSTANCE, disks=disks)
    [(sent_version, sent_method, kwargs)] = sent.sent
    assert (sent_version, sent_method) == (version, method)
    assert kwargs.get('disks') == sent_disks


def test_answers_of_old_agents_become_objects(agents):
    sent = agents(3, answer=FACTS.legacy())
    facts = sent.api.check_source(None, 'src', MIGRATION, INSTANCE)
    assert isinstance(facts, objects.SourceFacts)
    assert facts.legacy() == FACTS.legacy() and facts.host == 'src'
    sent.answer = {'power_state': 'running', 'stats': {'type': 'completed',
                                                       'downtime_ms': 12}}
    finish = sent.api.finish_on_destination(None, 'dst', MIGRATION, INSTANCE)
    assert (finish.power_state, finish.progress.downtime_ms) == ('running', 12)


@pytest.mark.parametrize('pin', ['2.0', '1.9', 'latest', '1', '0.9'])
def test_a_pin_that_is_not_a_version_of_the_api_stops_the_conductor(pin):
    with pytest.raises(exception.ConfigurationError) as info:
        agent_rpcapi.AgentAPI(_conf(pin))
    assert '[upgrade_levels] compute_agent' in str(info.value)
    rpc.cleanup()


def test_an_agent_older_than_service_version_3_cannot_be_a_block_migration_source(
        agents):
    assert agents(2).api.block_migration_refusal('s') is not None
    assert agents(3).api.block_migration_refusal('s') is None
