"""Authorization of the conductor's RPC API (oslo.policy, defaults in code).

Every public conductor method checks one rule before it does anything. Defaults: admin
only; agents report with the ``service`` role. Operators override rules in a policy file;
``oslopolicy-sample-generator --namespace migration_conductor`` prints the defaults.
"""

import threading

from oslo_policy import policy

from migration_conductor import exception

ADMIN = 'rule:admin_api'

_BASE_RULES = [
    policy.RuleDefault('admin_api', 'is_admin:True or role:admin',
                       description='Cloud administrators.'),
    policy.RuleDefault('service_api', 'role:service or rule:admin_api',
                       description='Compute agents and other services.'),
]

_API_RULES = [
    policy.DocumentedRuleDefault(
        'migration_conductor:host:list', ADMIN,
        'List compute hosts with their inventory and liveness.',
        [{'method': 'RPC', 'path': 'list_hosts'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:host:get', ADMIN,
        'Show one compute host.',
        [{'method': 'RPC', 'path': 'get_host'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:instance:list', ADMIN,
        'List instances and the host each runs on.',
        [{'method': 'RPC', 'path': 'list_instances'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:instance:delete', ADMIN,
        'Forget an instance its host no longer reports (power state "missing").',
        [{'method': 'RPC', 'path': 'delete_instance'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:migration:create', ADMIN,
        'Start a live migration of an instance.',
        [{'method': 'RPC', 'path': 'live_migrate'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:migration:create:host', ADMIN,
        'Start a live migration to a named (or forced) destination host.',
        [{'method': 'RPC', 'path': 'live_migrate (host=...)'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:profile:list', ADMIN,
        'List the migration profiles (availability contracts of migrations).',
        [{'method': 'RPC', 'path': 'list_profiles'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:profile:get', ADMIN, 'Show one migration profile.',
        [{'method': 'RPC', 'path': 'get_profile'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:migration:get', ADMIN, 'Show one migration.',
        [{'method': 'RPC', 'path': 'get_migration'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:migration:list', ADMIN, 'List migrations.',
        [{'method': 'RPC', 'path': 'list_migrations'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:migration:abort', ADMIN,
        'Abort a migration before its switch-over (the guest stays on the source).',
        [{'method': 'RPC', 'path': 'abort_migration'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:migration:force_complete', ADMIN,
        'Force a running migration to complete (pauses the guest until it runs on the '
        'destination, or switches it to post-copy when the profile allows it).',
        [{'method': 'RPC', 'path': 'force_complete_migration'}]),
    policy.DocumentedRuleDefault(
        'migration_conductor:host:report', 'rule:service_api',
        'Register a compute agent, report its inventory and guests, list the '
        'claims it must hold and the jobs it must watch, and report the progress '
        'and the end of the migration jobs it runs.',
        [{'method': 'RPC', 'path': 'register_host'},
         {'method': 'RPC', 'path': 'report_host_state'},
         {'method': 'RPC', 'path': 'list_host_claims'},
         {'method': 'RPC', 'path': 'get_host_migrations'},
         {'method': 'RPC', 'path': 'migration_progress'},
         {'method': 'RPC', 'path': 'migration_job_ended'}]),
]


def list_rules():
    """Entry point of ``oslo.policy.policies`` (sample and documentation)."""
    return _BASE_RULES + _API_RULES


class Enforcer:
    """Thread-safe lazy wrapper of :class:`oslo_policy.policy.Enforcer`."""

    def __init__(self, conf):
        self._conf = conf
        self._enforcer = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._enforcer is None:
                enforcer = policy.Enforcer(self._conf)
                enforcer.register_defaults(list_rules())
                self._enforcer = enforcer
            return self._enforcer

    def authorize(self, context, action, target=None):
        """Check ``action`` for ``context``.

        :raises PolicyNotAuthorized: the caller is not allowed.
        """
        target = target or {'project_id': context.project_id}
        self._get().authorize(action, target, context,
                              do_raise=True, exc=exception.PolicyNotAuthorized, action=action)
