"""No agent can send to another agent: only conductor code builds the agents' client."""

import ast
import os

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _uses(path, name):
    with open(path) as source:
        tree = ast.parse(source.read(), path)
    return any(isinstance(node, (ast.Name, ast.Attribute)) and
               (getattr(node, 'id', None) == name or getattr(node, 'attr', None) == name)
               for node in ast.walk(tree))


def test_only_the_conductor_builds_agent_clients():
    users = []
    for package in ('compute_agent', 'migration_conductor'):
        for root, _dirs, files in os.walk(os.path.join(TOP, package)):
            for name in files:
                path = os.path.join(root, name)
                if name.endswith('.py') and _uses(path, 'AgentAPI'):
                    users.append(os.path.relpath(path, TOP))
    # Only the conductor service builds it (and hands it to the flows); the class
    # definition in compute_agent/rpcapi.py is not a use.
    assert users == ['migration_conductor/service.py']
