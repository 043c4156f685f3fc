"""Property-based requests over the whole OpenAPI document (schemathesis): no 5xx, whatever a
client sends within (and around) the documented schemas.

Against a seeded app (a reseller with a product, a policy, a license and an agent, called with
a staff API key holding every scope), on PostgreSQL only: integer ranges, text lengths and
constraint violations are where PostgreSQL answers differently from SQLite, and CI's second
run is where this belongs. Bounded examples per operation keep it to a minute or two.
"""

from __future__ import annotations

import pytest

from tests.conftest import POSTGRES

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES, reason="the property-based API run is PostgreSQL's "
                                           "(set DATABASE_URL), as in CI's second run"),
]
EXAMPLES_PER_OPERATION = 25
# Endpoints that wait on purpose (server-sent events) are exercised by their own tests.
SKIP = {("GET", "/api/v1/executions/{execution_id}/stream")}


@pytest.fixture
def fuzz_app(app, migrated):
    """The test's empty database, in an app whose rate limits stay out of the way (a budget
    answering 429 would hide what the handlers do)."""
    from app import create_app

    generous = "1000000/minute"
    extra = {**migrated.extra, **{f"ALBEDO_RATE_LIMIT_{name}": generous for name in (
        "IP", "CREDENTIAL", "TENANT", "AUTH", "STRIPE_WEBHOOK", "LICENSE_KEY", "LICENSE_IP")}}
    application = create_app(migrated.with_overrides(extra=extra))
    yield application
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def seeded(app, platform, acme, globex, api_caller):
    from app.agents.service import Caller, create_agent
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate

    staff = api_caller(acme, role="RESELLER", email="owner@acme.example")
    api_caller(globex, role="RESELLER", email="owner@acme.example")  # a look-alike
    with app.app_context(), activate(acme.info):
        product = service.create_product("Pro", "agent-pro", entitlements=["chat"])
        policy = service.create_policy(product, service.PolicyInput(name="Standard"))
        service.issue_license(policy, name="Seat 1")
        create_agent(Caller(staff.user_id, "RESELLER"), name="Helper", slug="helper",
                     version={"model": "gpt-4o-mini", "system_prompt": "Hi."})
        db.session.commit()
    return {"Host": acme.host, **staff.headers}


def test_no_operation_answers_a_server_error(fuzz_app, seeded):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app,
                                            headers={"Host": seeded["Host"]})
    failures: list[str] = []
    tried = 0

    def exercise(operation) -> None:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  derandomize=True, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call(headers=seeded)
            if response.status_code >= 500:
                failures.append(f"{operation.method.upper()} {operation.path} -> "
                                f"{response.status_code}: body={case.body!r} "
                                f"query={case.query!r} path={case.path_parameters!r}")

        run()

    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        tried += 1
        exercise(operation)
    assert tried > 30, "the OpenAPI document lost its operations"
    assert failures == [], "\n".join(failures[:20])
