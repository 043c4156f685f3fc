"""`flask albedo …` commands."""

import pytest


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


@pytest.mark.parametrize("command", ["seed-demo", "create-tenant", "create-user", "worker",
                                     "add-domain", "ping-worker", "dev"])
def test_every_command_has_help(cli, command):
    result = cli.invoke(args=["albedo", command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_seed_demo_is_idempotent_and_prints_credentials(app, cli):
    first = cli.invoke(args=["albedo", "seed-demo"])
    assert first.exit_code == 0, first.output
    assert "http://localhost:5000/login" in first.output
    assert "http://acme.localhost:5000/login" in first.output
    assert "acme-customer-demo" in first.output
    second = cli.invoke(args=["albedo", "seed-demo"])
    assert second.exit_code == 0 and second.output == first.output
    client = app.test_client()
    assert "Acme Agents" in client.get("/login", headers={"Host": "acme.localhost"}).get_data(
        as_text=True)
    token = client.post("/api/v1/auth/token", headers={"Host": "acme.localhost"}, json={
        "email": "customer@acme.example", "password": "acme-customer-demo"})
    assert token.status_code == 200


def test_create_tenant_user_and_domain(app, cli):
    result = cli.invoke(args=["albedo", "create-tenant", "initech", "--name", "Initech",
                              "--primary-color", "#123456"])
    assert result.exit_code == 0 and "initech.localhost" in result.output
    bad = cli.invoke(args=["albedo", "create-tenant", "Bad Slug!", "--name", "x"])
    assert bad.exit_code != 0 and "slug" in bad.output
    user = cli.invoke(args=["albedo", "create-user", "initech", "bill@initech.example",
                            "--role", "RESELLER", "--password", "a long password"])
    assert user.exit_code == 0, user.output
    admin_on_reseller = cli.invoke(args=["albedo", "create-user", "initech", "x@initech.example",
                                         "--role", "ADMIN", "--password", "a long password"])
    assert admin_on_reseller.exit_code != 0 and "not allowed" in admin_on_reseller.output
    domain = cli.invoke(args=["albedo", "add-domain", "initech", "Agents.Initech.Example.",
                              "--primary"])
    assert domain.exit_code == 0 and "agents.initech.example" in domain.output
    response = app.test_client().get("/api/v1/tenant",
                                     headers={"Host": "agents.initech.example"})
    assert response.get_json()["base_url"] == "http://agents.initech.example:5000"
