"""A local stand-in for Google (OpenID Connect) and GitHub (OAuth 2 + REST API) over HTTP.

Authlib's real client talks to it: discovery document, JWKS, authorization endpoint (which
"signs in" the account named by ``provider.signed_in`` and redirects back with code + state),
token endpoint (client authentication, one-time codes, redirect_uri check), an RS256
id_token with the nonce, Google's userinfo, and GitHub's ``/user`` and ``/user/emails``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass
class FakeAccount:
    subject: str
    email: str
    email_verified: bool = True
    name: str = ""
    login: str = ""


@dataclass
class FakeOAuthProvider:
    server: ThreadingHTTPServer
    # client_id -> client_secret, for both providers.
    clients: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, FakeAccount] = field(default_factory=dict)
    # Which account the next authorization signs in as (the person at the consent screen).
    signed_in: str | None = None
    deny: bool = False
    codes: dict[str, dict] = field(default_factory=dict)
    tokens: dict[str, FakeAccount] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def settings_extra(self) -> dict[str, str]:
        """The environment overrides that point the app at this provider."""
        return {"OAUTH_GOOGLE_SERVER_METADATA_URL":
                f"{self.base}/google/.well-known/openid-configuration",
                "OAUTH_GITHUB_BASE_URL": f"{self.base}/github",
                "OAUTH_GITHUB_API_BASE": f"{self.base}/github-api"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- protocol pieces -------------------------------------------------------------------

    def discovery(self) -> dict:
        g = f"{self.base}/google"
        return {"issuer": g, "authorization_endpoint": f"{g}/authorize",
                "token_endpoint": f"{g}/token", "userinfo_endpoint": f"{g}/userinfo",
                "jwks_uri": f"{g}/jwks", "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"]}

    def jwks(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": "fake-1", "use": "sig", "alg": "RS256"}]}

    def authorize(self, provider: str, query: dict[str, str]) -> tuple[int, dict, bytes]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") not in self.clients or not redirect_uri:
            return 400, {}, b"unknown client"
        if self.deny:
            params = {"error": "access_denied", "state": query.get("state", "")}
            return 302, {"Location": f"{redirect_uri}?{urlencode(params)}"}, b""
        account = self.accounts[self.signed_in or ""]
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"provider": provider, "client_id": query["client_id"],
                            "redirect_uri": redirect_uri, "account": account,
                            "nonce": query.get("nonce")}
        params = {"code": code, "state": query.get("state", "")}
        return 302, {"Location": f"{redirect_uri}?{urlencode(params)}"}, b""

    def token(self, provider: str, headers, form: dict[str, str]) -> tuple[int, dict, bytes]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if not client_id or self.clients.get(client_id) != client_secret:
            return _json(401, {"error": "invalid_client"})
        grant = self.codes.pop(form.get("code", ""), None)  # one use only
        if (grant is None or grant["provider"] != provider or grant["client_id"] != client_id
                or grant["redirect_uri"] != form.get("redirect_uri")):
            return _json(400, {"error": "invalid_grant"})
        access = secrets.token_urlsafe(16)
        account: FakeAccount = grant["account"]
        self.tokens[access] = account
        body = {"access_token": access, "token_type": "bearer", "expires_in": 3600}
        if provider == "google":
            now = int(time.time())
            body["id_token"] = jwt.encode(
                {"iss": f"{self.base}/google", "aud": client_id, "sub": account.subject,
                 "email": account.email, "email_verified": account.email_verified,
                 "name": account.name, "nonce": grant["nonce"], "iat": now, "exp": now + 600},
                self.key, algorithm="RS256", headers={"kid": "fake-1"})
            body["scope"] = "openid email profile"
        return _json(200, body)

    def api(self, path: str, headers) -> tuple[int, dict, bytes]:
        account = self.tokens.get(headers.get("Authorization", "").removeprefix("Bearer "))
        if account is None:
            return _json(401, {"message": "Bad credentials"})
        if path == "/google/userinfo":
            return _json(200, {"sub": account.subject, "email": account.email,
                               "email_verified": account.email_verified, "name": account.name})
        if path == "/github-api/user":
            # GitHub shows only a public email here, often none: the app must ask /emails.
            return _json(200, {"id": int(account.subject), "login": account.login,
                               "name": account.name, "email": None})
        if path == "/github-api/user/emails":
            return _json(200, [{"email": "old-unverified@example.net", "primary": False,
                                "verified": False},
                               {"email": account.email, "primary": True,
                                "verified": account.email_verified}])
        return _json(404, {"message": "Not Found"})


def _json(status: int, body) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def start_oauth_provider() -> FakeOAuthProvider:
    holder: dict[str, FakeOAuthProvider] = {}

    class Handler(BaseHTTPRequestHandler):
        def _send(self, answer: tuple[int, dict, bytes]) -> None:
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            fake = holder["p"]
            parts = urlsplit(self.path)
            fake.log.append(f"GET {parts.path}")
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/google/.well-known/openid-configuration":
                self._send(_json(200, fake.discovery()))
            elif parts.path == "/google/jwks":
                self._send(_json(200, fake.jwks()))
            elif parts.path == "/google/authorize":
                self._send(fake.authorize("google", query))
            elif parts.path == "/github/login/oauth/authorize":
                self._send(fake.authorize("github", query))
            else:
                self._send(fake.api(parts.path, self.headers))

        def do_POST(self):
            fake = holder["p"]
            parts = urlsplit(self.path)
            fake.log.append(f"POST {parts.path}")
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if parts.path == "/google/token":
                self._send(fake.token("google", self.headers, form))
            elif parts.path == "/github/login/oauth/access_token":
                self._send(fake.token("github", self.headers, form))
            else:
                self._send(_json(404, {"error": "not_found"}))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider = FakeOAuthProvider(server)
    holder["p"] = provider
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return provider
