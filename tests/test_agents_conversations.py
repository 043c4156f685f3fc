"""/api/v1/conversations: threads continued by executions, owner-only, per tenant."""

from __future__ import annotations

import pytest

from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import host_client


@pytest.fixture
def world(make_agents_app, acme, globex, api_caller):
    application = make_agents_app()
    acme_client = host_client(application, acme.host)
    globex_client = host_client(application, globex.host)
    reseller = api_caller(acme, role="RESELLER", email="owner@acme.example")
    ann = api_caller(acme, email="ann@example.com")
    bob = api_caller(acme, email="bob@example.com")
    ann_reader = api_caller(acme, scopes=["agents:read"], email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")  # the look-alike in the other tenant
    template = _agent(acme_client, reseller, "support")  # both Acme customers may run it
    gus_agent = _agent(globex_client, gus, "support")
    return {"app": application, "acme": acme_client, "globex": globex_client,
            "reseller": reseller, "ann": ann, "ann_reader": ann_reader, "bob": bob, "gus": gus,
            "template": template, "gus_agent": gus_agent}


def _agent(client, caller, slug):
    response = client.post("/api/v1/agents", headers=caller.headers,
                           json={"name": slug.title(), "slug": slug, "version": VERSION})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _run(client, caller, agent_id, text, conversation_id=None):
    body = {"input": text}
    if conversation_id:
        body["conversation_id"] = conversation_id
    return client.post(f"/api/v1/agents/{agent_id}/executions", headers=caller.headers,
                       json=body)


def _chat(world, caller, agent_id, *texts):
    """Run ``texts`` as consecutive turns of one conversation; its id."""
    conversation = None
    for text in texts:
        started = _run(world["acme"], caller, agent_id, text, conversation)
        assert started.status_code == 202, started.get_json()
        conversation = started.get_json()["conversation_id"]
        run_agents_worker(world["app"])
    return conversation


def test_a_thread_is_continued_and_read_back_in_order(world):
    acme, ann = world["acme"], world["ann"]
    conversation = _chat(world, ann, world["template"], "first question", "second question")
    listed = acme.get("/api/v1/conversations", headers=ann.headers).get_json()
    assert [c["id"] for c in listed["items"]] == [conversation]
    assert listed["items"][0]["title"] == "first question"
    assert listed["items"][0]["user_id"] == str(ann.user_id)
    detail = acme.get(f"/api/v1/conversations/{conversation}", headers=ann.headers).get_json()
    assert detail["agent_id"] == world["template"]
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [
        ("user", "first question"), ("assistant", "Echo: first question"),
        ("user", "second question"), ("assistant", "Echo: second question")]
    executions = {e["input"]: e["id"] for e in acme.get(
        "/api/v1/executions", headers=ann.headers).get_json()["items"]}
    assert [m["execution_id"] for m in detail["messages"]] == [
        executions["first question"]] * 2 + [executions["second question"]] * 2


def test_another_customer_neither_reads_nor_continues_nor_deletes_a_thread(world):
    acme, ann, bob = world["acme"], world["ann"], world["bob"]
    conversation = _chat(world, ann, world["template"], "private matter")
    url = f"/api/v1/conversations/{conversation}"
    for answer in (acme.get(url, headers=bob.headers), acme.delete(url, headers=bob.headers)):
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "conversation_not_found"
    assert acme.get("/api/v1/conversations", headers=bob.headers).get_json()["items"] == []
    # Bob may run the same template, but not inside Ann's thread: 404, and nothing stored.
    hijack = _run(acme, bob, world["template"], "what did she say?", conversation)
    assert hijack.status_code == 404
    assert hijack.get_json()["error"]["code"] == "conversation_not_found"
    assert acme.get("/api/v1/executions", headers=bob.headers).get_json()["items"] == []
    messages = acme.get(url, headers=ann.headers).get_json()["messages"]
    assert [m["content"] for m in messages] == ["private matter", "Echo: private matter"]


def test_another_tenant_cannot_see_or_continue_a_thread(world):
    acme, globex, ann, gus = world["acme"], world["globex"], world["ann"], world["gus"]
    conversation = _chat(world, ann, world["template"], "acme only")
    theirs = _run(globex, gus, world["gus_agent"], "globex words").get_json()["conversation_id"]
    url = f"/api/v1/conversations/{conversation}"
    assert globex.get(url, headers=gus.headers).status_code == 404
    assert globex.delete(url, headers=gus.headers).status_code == 404
    assert [c["id"] for c in globex.get("/api/v1/conversations", headers=gus.headers)
            .get_json()["items"]] == [theirs]
    hijack = _run(globex, gus, world["gus_agent"], "continue theirs", conversation)
    assert hijack.status_code == 404
    assert hijack.get_json()["error"]["code"] == "conversation_not_found"
    # And the other way round: Ann cannot read Gus's thread on her own domain.
    assert acme.get(f"/api/v1/conversations/{theirs}", headers=ann.headers).status_code == 404


def test_a_reseller_sees_the_tenant_filters_by_agent_and_pages(world):
    acme, reseller, ann, bob = world["acme"], world["reseller"], world["ann"], world["bob"]
    anns_own = _agent(acme, ann, "mine")
    first = _chat(world, ann, world["template"], "one")
    second = _chat(world, bob, world["template"], "two")
    third = _chat(world, ann, anns_own, "three")
    page = acme.get("/api/v1/conversations?limit=2", headers=reseller.headers).get_json()
    assert [c["id"] for c in page["items"]] == [third, second] and page["next_cursor"]
    rest = acme.get(f"/api/v1/conversations?limit=2&cursor={page['next_cursor']}",
                    headers=reseller.headers).get_json()
    assert [c["id"] for c in rest["items"]] == [first] and rest["next_cursor"] is None
    on_template = acme.get(f"/api/v1/conversations?agent_id={world['template']}",
                           headers=reseller.headers).get_json()["items"]
    assert {c["id"] for c in on_template} == {first, second}
    assert acme.get(f"/api/v1/conversations/{second}", headers=reseller.headers
                    ).get_json()["messages"][0]["content"] == "two"
    mine = acme.get("/api/v1/conversations", headers=ann.headers).get_json()["items"]
    assert [c["id"] for c in mine] == [third, first]
    bad = acme.get("/api/v1/conversations?agent_id=nope", headers=ann.headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "validation_failed"


def test_delete_waits_for_running_turns_then_removes_the_thread_not_the_executions(world):
    acme, ann = world["acme"], world["ann"]
    conversation = _chat(world, ann, world["template"], "keep the record")
    queued = _run(acme, ann, world["template"], "still going", conversation).get_json()
    url = f"/api/v1/conversations/{conversation}"
    busy = acme.delete(url, headers=ann.headers)
    assert busy.status_code == 409 and busy.get_json()["error"]["code"] == "conversation_busy"
    run_agents_worker(world["app"])
    assert len(acme.get(url, headers=ann.headers).get_json()["messages"]) == 4
    assert acme.delete(url, headers=world["ann_reader"].headers).status_code == 403
    assert acme.delete(url, headers=ann.headers).status_code == 204
    assert acme.get(url, headers=ann.headers).status_code == 404
    assert acme.get("/api/v1/conversations", headers=ann.headers).get_json()["items"] == []
    kept = acme.get(f"/api/v1/executions/{queued['id']}", headers=ann.headers).get_json()
    assert kept["status"] == "succeeded" and kept["conversation_id"] is None
    gone = _run(acme, ann, world["template"], "again", conversation)
    assert gone.status_code == 404

