"""The builder: immutable versions, explicit publish and roll back, variables, who sees what."""

from __future__ import annotations

import pytest

from app.agents import service, templating
from app.agents.models import AgentVersion, VersionImmutableError
from app.agents.service import Caller
from app.errors import ApiError
from app.extensions import db
from tenants.context import activate


@pytest.fixture
def people(acme, globex, make_user):
    return {
        "ann": make_user(acme, "ann@example.com"),
        "bob": make_user(acme, "bob@example.com"),
        "reseller": make_user(acme, "owner@acme.example", role="RESELLER"),
        "gus": make_user(globex, "ann@example.com"),
    }


V1 = {"model": "gpt-4o-mini", "system_prompt": "Be brief about {{topic}}.",
      "variables": [{"name": "topic", "type": "string", "default": "cats"}]}


def test_versions_are_immutable_and_publish_and_rollback_are_explicit(ctx, acme, people):
    with activate(acme.info):
        ann = Caller(people["ann"], "USER")
        agent = service.create_agent(ann, name="Support", version=V1)
        assert agent.published_version == 1
        v2 = service.create_version(ann, agent, model="gpt-4o", system_prompt="Formal.")
        db.session.commit()
        # A new version is not live until published.
        assert service.published_version(agent).model == "gpt-4o-mini"
        service.publish(ann, agent, v2.number)
        db.session.commit()
        assert service.published_version(agent).number == 2
        service.publish(ann, agent, 1)  # roll back
        db.session.commit()
        assert service.published_version(agent).number == 1
        v1 = service.get_version(agent, 1)
        v1.system_prompt = "changed behind our back"
        with pytest.raises(VersionImmutableError):
            db.session.commit()
        db.session.rollback()
        assert db.session.get(AgentVersion, v1.id).system_prompt == "Be brief about {{topic}}."
        with pytest.raises(ApiError) as err:
            service.publish(ann, agent, 9)
        assert err.value.code == "version_not_found"


def test_variables_are_declared_typed_and_validated_at_execution():
    declared = templating.validate_declarations(
        "Hi {{name}}, you have {{count}} items", [
            {"name": "name", "type": "string"},
            {"name": "count", "type": "integer", "default": 0}])
    assert templating.resolve(declared, {"name": "Ann"}) == {"name": "Ann", "count": 0}
    assert templating.render("Hi {{name}}, {{ count }}", {"name": "Ann", "count": 2}) == "Hi Ann, 2"
    with pytest.raises(ApiError) as err:
        templating.resolve(declared, {"count": True, "extra": 1})
    assert set(err.value.details["variables"]) == {"name", "count", "extra"}
    with pytest.raises(ApiError) as err:
        templating.validate_declarations("Hello {{who}}", [])
    assert err.value.code == "undeclared_variable"


def test_a_user_sees_own_agents_and_templates_never_another_tenants(ctx, acme, globex, people):
    with activate(acme.info):
        ann, bob = Caller(people["ann"], "USER"), Caller(people["bob"], "USER")
        reseller = Caller(people["reseller"], "RESELLER")
        mine = service.create_agent(ann, name="Mine", slug="mine", version=V1)
        theirs = service.create_agent(bob, name="Bobs", slug="bobs", version=V1)
        template = service.create_agent(reseller, name="Template", slug="tpl", version=V1)
        db.session.commit()
        assert template.is_template and not mine.is_template
        visible = {a.slug for a in db.session.scalars(service.visible_agents(ann))}
        assert visible == {"mine", "tpl"}
        with pytest.raises(ApiError) as err:
            service.get_agent(ann, theirs.id)
        assert err.value.status == 404
        with pytest.raises(ApiError) as err:
            service.get_agent(ann, template.id, for_edit=True)
        assert err.value.status == 403
        assert len(db.session.scalars(service.visible_agents(reseller)).all()) == 3
        acme_ids = (mine.id, theirs.id, template.id)
    with activate(globex.info):
        gus = Caller(people["gus"], "USER")
        # Same slug in another tenant is fine; the other tenant's agents are invisible.
        service.create_agent(gus, name="Mine", slug="mine", version=V1)
        db.session.commit()
        for agent_id in acme_ids:
            with pytest.raises(ApiError):
                service.get_agent(gus, agent_id)
        with pytest.raises(ApiError) as err:
            service.create_agent(gus, name="Mine again", slug="mine")
        assert err.value.code == "slug_taken"
