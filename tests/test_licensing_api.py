"""The licensing management API: resellers manage their tenant, customers see their own."""

from __future__ import annotations

import csv
import io

from tests.licensing_support import settle, validate


def _setup(site, reseller, **policy):
    client = site.client
    product = client.post("/api/v1/products", json={"name": "Pro", "code": "pro",
                                                    "entitlements": ["chat"]},
                          headers=reseller.headers)
    assert product.status_code == 201, product.get_data(as_text=True)
    pol = client.post("/api/v1/policies", json={"product_id": product.get_json()["id"],
                                                "name": "Yearly", "duration_days": 365,
                                                **policy},
                      headers=reseller.headers)
    assert pol.status_code == 201, pol.get_data(as_text=True)
    return product.get_json(), pol.get_json()


def _issue(site, reseller, policy, **body):
    response = site.client.post("/api/v1/licenses", json={"policy_id": policy["id"], **body},
                                headers=reseller.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_reseller_issues_searches_and_acts_within_its_tenant(app, acme, globex, api_caller):
    acme_reseller = api_caller(acme, role="RESELLER")
    globex_reseller = api_caller(globex, role="RESELLER")
    _, acme_policy = _setup(acme, acme_reseller)
    _, globex_policy = _setup(globex, globex_reseller)
    first = _issue(acme, acme_reseller, acme_policy, name="Alpha seat",
                   customer_email="Buyer@Example.com")
    second = _issue(acme, acme_reseller, acme_policy, name="Beta seat")
    twin = _issue(globex, globex_reseller, globex_policy, name="Alpha seat",
                  customer_email="buyer@example.com")
    assert first["key"].startswith("ACME-") and first["customer_email"] == "buyer@example.com"
    assert first["status"] == "active" and first["expires_at"]

    page = acme.client.get("/api/v1/licenses?limit=1", headers=acme_reseller.headers).get_json()
    assert [i["id"] for i in page["items"]] == [second["id"]] and page["next_cursor"]
    rest = acme.client.get(f"/api/v1/licenses?limit=1&cursor={page['next_cursor']}",
                           headers=acme_reseller.headers).get_json()
    assert [i["id"] for i in rest["items"]] == [first["id"]] and rest["next_cursor"] is None
    found = acme.client.get("/api/v1/licenses?q=alpha", headers=acme_reseller.headers)
    assert [i["id"] for i in found.get_json()["items"]] == [first["id"]]
    by_key = acme.client.get("/api/v1/licenses", query_string={"q": first["key"].lower()},
                             headers=acme_reseller.headers)
    assert [i["id"] for i in by_key.get_json()["items"]] == [first["id"]]
    # globex's twin is invisible: not listed, not found by id, not actionable.
    assert acme.client.get(f"/api/v1/licenses/{twin['id']}",
                           headers=acme_reseller.headers).status_code == 404
    assert acme.client.post(f"/api/v1/licenses/{twin['id']}/revoke",
                            headers=acme_reseller.headers).status_code == 404
    assert acme.client.get("/api/v1/licenses?q=buyer",
                           headers=acme_reseller.headers).get_json()["items"][0]["id"] == \
        first["id"]

    url = f"/api/v1/licenses/{first['id']}"
    assert acme.client.post(f"{url}/suspend", headers=acme_reseller.headers) \
        .get_json()["status"] == "suspended"
    assert validate(acme, first["key"])["code"] == "SUSPENDED"
    assert acme.client.get("/api/v1/licenses?status=suspended",
                           headers=acme_reseller.headers).get_json()["items"][0]["id"] == \
        first["id"]
    acme.client.post(f"{url}/reinstate", headers=acme_reseller.headers)
    extended = acme.client.post(f"{url}/extend", json={"expires_at": None},
                                headers=acme_reseller.headers).get_json()
    assert extended["expires_at"] is None and extended["key"] != first["key"]
    assert validate(acme, extended["key"])["code"] == "VALID"
    renewed = acme.client.post(f"{url}/renew", headers=acme_reseller.headers)
    assert renewed.status_code == 200 and renewed.get_json()["expires_at"]
    acme.client.post(f"{url}/revoke", headers=acme_reseller.headers)
    again = acme.client.post(f"{url}/reinstate", headers=acme_reseller.headers)
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "license_revoked")
    assert validate(globex, twin["key"])["code"] == "VALID"


def test_customers_see_only_their_own_licenses(app, acme, globex, api_caller, make_user):
    reseller = api_caller(acme, role="RESELLER")
    _, policy = _setup(acme, reseller)
    carol = api_caller(acme, role="USER", email="carol@example.com")
    dave = api_caller(acme, role="USER", email="dave@example.com")
    carols = _issue(acme, reseller, policy, owner_id=str(carol.user_id))
    # Sold to an email before the account: attaching to an existing account claims it.
    sold = _issue(acme, reseller, policy, customer_email="dave@example.com")
    attached = acme.client.put(f"/api/v1/licenses/{sold['id']}/customer",
                               json={"customer_email": "dave@example.com"},
                               headers=reseller.headers).get_json()
    assert attached["owner_id"] == str(dave.user_id)
    listed = acme.client.get("/api/v1/licenses", headers=carol.headers).get_json()["items"]
    assert [i["id"] for i in listed] == [carols["id"]]
    assert acme.client.get(f"/api/v1/licenses/{sold['id']}",
                           headers=carol.headers).status_code == 404
    assert acme.client.get(f"/api/v1/licenses/{sold['id']}/machines",
                           headers=dave.headers).get_json() == {"items": [],
                                                                "next_cursor": None}
    refused = acme.client.post("/api/v1/licenses", json={"policy_id": policy["id"]},
                               headers=carol.headers)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "forbidden")
    assert acme.client.get("/api/v1/products", headers=carol.headers).status_code == 403
    # A user of globex with the same email sees nothing of acme's.
    globex_carol = api_caller(globex, role="USER", email="carol@example.com")
    assert globex.client.get("/api/v1/licenses",
                             headers=globex_carol.headers).get_json()["items"] == []


def test_scopes_are_enforced(app, acme, api_caller):
    reader = api_caller(acme, role="RESELLER", scopes=["licenses:read"])
    response = acme.client.post("/api/v1/products", json={"name": "X", "code": "x"},
                                headers=reader.headers)
    assert (response.status_code, response.get_json()["error"]["code"]) == (
        403, "insufficient_scope")
    assert acme.client.get("/api/v1/products", headers=reader.headers).status_code == 200
    assert acme.client.get("/api/v1/licenses").status_code == 401


def test_policy_validation_errors_are_clear(app, acme, api_caller):
    reseller = api_caller(acme, role="RESELLER")
    product, _ = _setup(acme, reseller)
    response = acme.client.post("/api/v1/policies", json={
        "product_id": product["id"], "name": "Bad", "max_machines": 3, "floating": False},
        headers=reseller.headers)
    assert response.status_code == 422
    assert "max_machines" in response.get_json()["error"]["details"]["fields"]
    dup = acme.client.post("/api/v1/products", json={"name": "Pro", "code": "pro"},
                           headers=reseller.headers)
    assert dup.status_code == 422 and "code" in dup.get_json()["error"]["details"]["fields"]


def test_bulk_issue_reports_progress_and_offers_a_csv(app, acme, globex, api_caller):
    from jobs.worker import run_worker

    reseller = api_caller(acme, role="RESELLER")
    other = api_caller(globex, role="RESELLER")
    _, policy = _setup(acme, reseller)
    started = acme.client.post("/api/v1/licenses/bulk", json={
        "policy_id": policy["id"], "count": 260, "name_prefix": "Batch"},
        headers=reseller.headers)
    assert started.status_code == 202
    bulk = started.get_json()
    assert (bulk["status"], bulk["issued"], bulk["csv_url"]) == ("queued", 0, None)
    url = f"/api/v1/licenses/bulk/{bulk['id']}"
    early = acme.client.get(f"{url}/licenses.csv", headers=reseller.headers)
    assert (early.status_code, early.get_json()["error"]["code"]) == (409, "bulk_issue_running")
    too_many = acme.client.post("/api/v1/licenses/bulk", json={
        "policy_id": policy["id"], "count": 10_001}, headers=reseller.headers)
    assert too_many.status_code == 422
    run_worker(app, ["default"], burst=True, simple=True)
    done = acme.client.get(url, headers=reseller.headers).get_json()
    assert (done["status"], done["issued"], done["progress"]) == ("done", 260, 1.0)
    assert done["csv_url"].startswith("http://acme.localhost:5000/api/v1/licenses/bulk/")
    assert globex.client.get(url, headers=other.headers).status_code == 404
    download = acme.client.get(f"{url}/licenses.csv", headers=reseller.headers)
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert len(rows) == 260 and len({r["key"] for r in rows}) == 260
    assert rows[0]["name"] == "Batch 1"
    assert validate(acme, rows[-1]["key"])["code"] == "VALID"
    assert validate(globex, rows[0]["key"])["code"] == "NOT_FOUND"


def test_validation_log_lists_this_tenants_validations(app, acme, globex, api_caller):
    from jobs.enqueue import enqueue
    from jobs.worker import run_worker

    reseller = api_caller(acme, role="RESELLER")
    _, policy = _setup(acme, reseller)
    lic = _issue(acme, reseller, policy)
    validate(acme, lic["key"])
    validate(globex, lic["key"])
    settle(app)
    with app.app_context():
        enqueue("licensing.flush_validations", tenant_id=acme.info.id)
        enqueue("licensing.flush_validations", tenant_id=globex.info.id)
    run_worker(app, ["default"], burst=True, simple=True)
    items = acme.client.get("/api/v1/licenses/validations",
                            headers=reseller.headers).get_json()["items"]
    assert [(i["code"], i["license_id"]) for i in items] == [("VALID", lic["id"])]
    licensed = acme.client.get(f"/api/v1/licenses/{lic['id']}",
                               headers=reseller.headers).get_json()
    assert licensed["validation_count"] == 1 and licensed["last_validated_at"]


def test_licenses_sold_to_an_email_are_claimed_by_its_verified_account(app, acme, globex,
                                                                       api_caller):
    from app.auth.models import User
    from app.extensions import db
    from tenants.context import activate

    reseller = api_caller(acme, role="RESELLER")
    _, policy = _setup(acme, reseller)
    sold = _issue(acme, reseller, policy, customer_email="erin@example.com")
    globex_reseller = api_caller(globex, role="RESELLER")
    _, globex_policy = _setup(globex, globex_reseller)
    _issue(globex, globex_reseller, globex_policy, customer_email="erin@example.com")
    erin = api_caller(acme, role="USER", email="erin@example.com")
    with app.app_context(), activate(acme.info):
        db.session.get(User, erin.user_id).email_verified_at = None
        db.session.commit()
    # An unverified address claims nothing: anyone could sign up with it.
    assert acme.client.get("/api/v1/licenses", headers=erin.headers).get_json()["items"] == []
    with app.app_context(), activate(acme.info):
        from app import clock

        db.session.get(User, erin.user_id).email_verified_at = clock.now()
        db.session.commit()
    items = acme.client.get("/api/v1/licenses", headers=erin.headers).get_json()["items"]
    assert [(i["id"], i["owner_id"]) for i in items] == [(sold["id"], str(erin.user_id))]
