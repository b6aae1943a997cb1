"""Request context carried by every RPC call and every database transaction.

The context says who asks (user, project, roles) and carries the oslo.db transaction
state. It is serialized on the wire by :mod:`migration_conductor.rpc`, so an agent that
answers a conductor call sees the same request id in its logs as the conductor.
"""

from oslo_context import context
from oslo_db.sqlalchemy import enginefacade


@enginefacade.transaction_context_provider
class RequestContext(context.RequestContext):
    """A security context that also carries the database session state."""

    def to_dict(self):
        return super().to_dict()

    @classmethod
    def from_dict(cls, values):
        return super().from_dict(values)


def get_admin_context(**kwargs):
    """Return a context with the admin role, for services acting on their own behalf."""
    kwargs.setdefault('roles', ['admin'])
    kwargs.setdefault('is_admin', True)
    kwargs.setdefault('overwrite', False)
    return RequestContext(**kwargs)


def get_service_context(**kwargs):
    """Return a context with the ``service`` role and no admin rights, for agents.

    Policy lets it do what agents do (``migration_conductor:host:report``: register,
    heartbeat, ask for their claims) and nothing an operator does (list or show hosts,
    instances and migrations, start, abort or force-complete a migration).

    :param kwargs: passed to :class:`RequestContext` (e.g. ``user_id``, ``request_id``);
        ``roles`` defaults to ``['service']``.
    :returns: a :class:`RequestContext` with ``is_admin`` False.
    :raises ValueError: ``is_admin=True`` was asked: use :func:`get_admin_context`.
    """
    if kwargs.get('is_admin'):
        raise ValueError('a service context is never an admin context: '
                         'use get_admin_context()')
    kwargs['is_admin'] = False
    kwargs.setdefault('roles', ['service'])
    kwargs.setdefault('overwrite', False)
    return RequestContext(**kwargs)
