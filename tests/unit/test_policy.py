"""The service context: what compute agents call the conductor with."""

import threading

from oslo_context import context as oslo_context
import pytest

from migration_conductor import context as mc_context


# --- the service context ---------------------------------------------------------------

def test_service_context_has_the_service_role_and_is_not_admin():
    ctxt = mc_context.get_service_context()
    assert ctxt.roles == ['service']
    assert ctxt.is_admin is False
    assert isinstance(ctxt, mc_context.RequestContext)


def test_service_context_survives_the_wire_unchanged():
    ctxt = mc_context.get_service_context(user_id='agent', request_id='req-1')
    again = mc_context.RequestContext.from_dict(ctxt.to_dict())
    assert (again.roles, again.is_admin, again.user_id, again.request_id) == (
        ['service'], False, 'agent', 'req-1')


def test_service_context_takes_request_fields_but_never_admin():
    ctxt = mc_context.get_service_context(user_id='agent', project_id='service',
                                          roles=['service', 'reader'])
    assert (ctxt.user_id, ctxt.project_id, ctxt.roles, ctxt.is_admin) == (
        'agent', 'service', ['service', 'reader'], False)
    with pytest.raises(ValueError, match='get_admin_context'):
        mc_context.get_service_context(is_admin=True)


def test_service_context_does_not_replace_the_thread_current_context():
    # In a thread of its own, whose current context dies with it.
    found = []

    def serve_a_request():
        request = mc_context.RequestContext(request_id='req-of-the-caller')
        mc_context.get_service_context()
        found.append(oslo_context.get_current() is request)

    worker = threading.Thread(target=serve_a_request)
    worker.start()
    worker.join()
    assert found == [True]
