"""Agents hold no database access: no db import, no [database] options, no DB module.

Two proofs: a static one (no module of ``compute_agent`` imports ``db``, oslo.db's
engine code, or a conductor-only module) and a dynamic one (a whole agent is started in a
fresh interpreter and, after it has registered and sent a heartbeat, no ``db`` module is
loaded and its configuration has no ``[database]`` group).
"""

import ast
import os
import subprocess
import sys
import textwrap

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
AGENT_DIR = os.path.join(TOP, 'compute_agent')

# Conductor-only modules: each of them reaches the database.
FORBIDDEN = ('db', 'oslo_db.sqlalchemy.enginefacade', 'migration_conductor.manager',
             'migration_conductor.inventory', 'migration_conductor.service',
             'migration_conductor.all_in_one', 'migration_conductor.cmd.manage')


def _imports(path):
    with open(path) as source:
        tree = ast.parse(source.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for alias in node.names:
                yield '%s.%s' % (node.module, alias.name)


def _forbidden(name):
    return any(name == f or name.startswith(f + '.') for f in FORBIDDEN)


def test_no_agent_module_imports_database_code():
    offenders = []
    for root, _dirs, files in os.walk(AGENT_DIR):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(root, name)
                offenders += ['%s: %s' % (os.path.relpath(path, TOP), imported)
                              for imported in _imports(path) if _forbidden(imported)]
    assert not offenders, offenders


def test_the_static_check_catches_a_db_import(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('from db import api\nimport migration_conductor.manager\n')
    assert [n for n in _imports(str(bad)) if _forbidden(n)] == [
        'db', 'db.api', 'migration_conductor.manager']


AGENT_RUN = textwrap.dedent('''
    import sys, warnings
    warnings.filterwarnings('ignore')
    from oslo_config import cfg
    import oslo_messaging as messaging
    from compute_agent import cmd as agent_cmd          # the agent's entry point
    from compute_agent import service
    from compute_agent.virt import factory
    from migration_conductor import cmd, rpc
    from migration_conductor import objects

    conf = cfg.ConfigOpts()
    cmd.register_all(conf, database=False)
    conf(['--config-file', sys.argv[1]])
    reports = []

    class FakeConductor:
        """Stands in for the conductor on the same in-process transport."""
        target = messaging.Target(version='1.0')
        def register_host(self, context, report):
            reports.append(report)
            report.host.enabled = True    # as the conductor records it
            return report.host
        def report_host_state(self, context, report):
            reports.append(report)

    server = rpc.get_server(conf, messaging.Target(topic='migration_conductor',
                                                   server='c'), [FakeConductor()])
    server.start()
    agent = service.AgentService(conf, 'sim-1', factory.load_driver(conf, 'sim-1'))
    agent.driver.add_domain('guest-1')
    agent.start(register_timeout=10)
    agent.report_now()
    import time
    deadline = time.time() + 10
    while len(reports) < 2 and time.time() < deadline:
        time.sleep(0.05)
    agent.stop(); server.stop(); server.wait()
    loaded = sorted(m for m in sys.modules if m == 'db' or m.startswith('db.'))
    print('REPORTS', len(reports), len(reports[-1].instances))
    print('DB_MODULES', loaded)
    print('HAS_DATABASE_GROUP', 'database' in conf)
''')


def test_a_running_agent_loads_no_database_module(tmp_path):
    config = tmp_path / 'agent.conf'
    config.write_text('[DEFAULT]\ntransport_url = fake:/\n'
                      '[agent]\nvirt_driver = simulated\nheartbeat_interval = 1\n')
    script = tmp_path / 'agent_run.py'
    script.write_text(AGENT_RUN)
    result = subprocess.run([sys.executable, str(script), str(config)], cwd=TOP,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(' ', 1) for line in result.stdout.splitlines()
                 if ' ' in line)
    assert lines['REPORTS'] == '2 1', result.stdout   # registered, then a heartbeat
    assert lines['DB_MODULES'] == '[]', result.stdout
    assert lines['HAS_DATABASE_GROUP'] == 'False', result.stdout
