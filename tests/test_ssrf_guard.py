"""The SSRF guard, run as in production (no allowlist) unless a test allows its receiver."""

import pytest

from app.integrations.ssrf import SsrfBlocked, resolve_checked, safe_request
from tests.fakes.receiver import start_receiver


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.close()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://10.0.0.1/", "http://192.168.1.1/", "http://172.16.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/", "http://100.64.0.1/", "http://localhost/", "ftp://example.com/",
    "http://user:pw@example.com/",
])
def test_blocked_destinations(ctx, url):
    with pytest.raises(SsrfBlocked):
        resolve_checked(url)


def test_the_guard_stops_a_request_to_a_local_listener(ctx, receiver):
    with pytest.raises(SsrfBlocked, match="loopback"):
        safe_request("POST", receiver.url(), json={"x": 1})
    assert receiver.requests == []


def test_an_allowlisted_receiver_is_reached_and_a_redirect_to_loopback_is_not(
        migrated, receiver):
    from app import create_app

    app = create_app(migrated.with_overrides(
        extra={**migrated.extra, "ALBEDO_SSRF_ALLOW": f"127.0.0.1:{receiver.port}"}))
    with app.app_context():
        response = safe_request("POST", receiver.url(), json={"x": 1})
        assert response.status_code == 200 and response.body == b"ok"
        assert receiver.requests[0].headers["Host"] == f"127.0.0.1:{receiver.port}"
        # The allowed receiver redirects to another loopback port: that hop is refused.
        receiver.script = [(302, {"Location": "http://127.0.0.1:9/steal"}, b"")]
        with pytest.raises(SsrfBlocked):
            safe_request("POST", receiver.url(), json={"x": 1})
