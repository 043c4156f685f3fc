"""License-gated agents: a token only while the license validates VALID; otherwise the answer
carries the license's code. Executions are attributed to the license. Two tenants with
look-alike licenses and keys."""

from __future__ import annotations

import uuid

from app.agents.models import Execution
from app.extensions import db
from app.licensing import service as licensing
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import host_client
from tests.licensing_support import make_license
from tests.widget_support import answer_text, chat, events_of, make_widget, token_for


def _gated(make_agents_app, site, api_caller, application=None):
    application = application or make_agents_app(ALBEDO_LICENSE_SYNC_SECONDS="0")
    client = host_client(application, site.host)
    owner = api_caller(site, email="ann@example.com")
    key = make_widget(client, owner.headers, origins=(), requires_license=True)
    return application, client, key, make_license(application, site)


def test_a_valid_license_gets_a_token_and_its_executions(make_agents_app, acme, globex,
                                                         api_caller):
    application, a, key, license_ = _gated(make_agents_app, acme, api_caller)
    _, g, other_key, other_license = _gated(make_agents_app, globex, api_caller, application)

    missing = token_for(a, key["key"], origin=None)
    assert missing.status_code == 401 and missing.get_json()["error"]["code"] == \
        "license_required"
    granted = token_for(a, key["key"], origin=None, license_key=license_.key)
    assert granted.status_code == 200
    assert granted.get_json()["license_id"] == str(license_.id)
    token = granted.get_json()["token"]

    response = chat(a, key["key"], token, "hello from the product", origin=None)
    assert response.status_code == 200
    run_agents_worker(application)
    events = events_of(response)
    assert answer_text(events) == "Echo: hello from the product"
    with application.app_context(), activate(acme.info):
        execution = db.session.get(Execution, uuid.UUID(events[0][1]["execution_id"]))
        assert execution.license_id == license_.id

    # A page cannot use the program's token (it was issued to no origin).
    assert chat(a, key["key"], token, "from a page", origin="https://x.example"
                ).status_code == 403
    # The other tenant's license is unknown here (its own key works there).
    foreign = token_for(a, key["key"], origin=None, license_key=other_license.key)
    assert foreign.status_code == 403
    assert foreign.get_json()["error"]["details"]["license_code"] == "NOT_FOUND"
    assert token_for(g, other_key["key"], origin=None,
                     license_key=other_license.key).status_code == 200


def test_a_suspended_license_gets_its_code_and_loses_its_token(make_agents_app, acme,
                                                               globex, api_caller):
    application, a, key, license_ = _gated(make_agents_app, acme, api_caller)
    _, g, other_key, other_license = _gated(make_agents_app, globex, api_caller, application)
    token = token_for(a, key["key"], origin=None, license_key=license_.key).get_json()["token"]

    with application.app_context(), activate(acme.info):
        licensing.suspend(licensing.get_license(license_.id))
        db.session.commit()

    refused = token_for(a, key["key"], origin=None, license_key=license_.key)
    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert error["code"] == "license_suspended"
    assert error["details"]["license_code"] == "SUSPENDED"
    # The token issued while it was valid stops working at once.
    stale = chat(a, key["key"], token, "still licensed?", origin=None)
    assert stale.status_code == 403
    assert stale.get_json()["error"]["details"]["license_code"] == "SUSPENDED"
    # The other tenant's look-alike license is untouched.
    assert token_for(g, other_key["key"], origin=None,
                     license_key=other_license.key).status_code == 200
