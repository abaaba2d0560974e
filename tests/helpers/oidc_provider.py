"""A real OpenID Connect provider for the sign-in tests, built with Authlib's server side.

`python -m tests.helpers.oidc_provider --port PORT --client-id ID --client-secret SECRET
--redirect-uri URI --users USERS.json` serves discovery, a sign-in form at /authorize (the user
types their user name: no password, it is a test school), /token (the authorization code flow with
PKCE, an RS256-signed ID token), /jwks and /userinfo. USERS.json maps user names to their claims
(sub, name, email, email_verified). Everything lives in memory for the life of the process.

`OidcProvider` starts and stops that process for a test.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.helpers.support import ROOT, ServerProcess, answers, wait_for

SCOPES = "openid profile email"


class OidcProvider(ServerProcess):
    """The provider process of a test: `issuer` is its discovery's base URL."""

    def __init__(self, port: int, client: dict[str, str], users: dict[str, dict], folder: Path):
        self.port, self.client, self.users, self.folder = port, client, users, folder
        self.issuer = f"http://127.0.0.1:{port}"
        self.metadata_url = f"{self.issuer}/.well-known/openid-configuration"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Self:
        users = self.folder / "users.json"
        users.write_text(json.dumps(self.users))
        args = [f"--{name.replace('_', '-')}={value}" for name, value in self.client.items()]
        with open(self.folder / "oidc_provider.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.helpers.oidc_provider", f"--port={self.port}", f"--users={users}", *args],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: answers(self.metadata_url) or self.process.poll() is not None, timeout, message="the provider")
        assert self.process.poll() is None, (self.folder / "oidc_provider.log").read_text()[-2000:]
        return self


# --- the provider process ---------------------------------------------------------------


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str
    client_metadata: dict = field(default_factory=dict)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPES.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class User:
    name: str
    claims: dict


@dataclass
class Code:
    code: str
    client: Client
    user: User
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Token:
    access_token: str
    scope: str
    client: Client
    user: User
    expires_at: float

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() > self.expires_at

    def is_revoked(self) -> bool:
        return False

    def get_client(self) -> Client:
        return self.client

    def get_user(self) -> User:
        return self.user


def user_info(user: User, scope: str):
    from authlib.oidc.core import UserInfo

    return UserInfo(user.claims).filter(scope)


def create_app(issuer: str, client: Client, users: dict[str, User]):
    from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
    from authlib.oauth2.rfc6749 import grants
    from authlib.oauth2.rfc6750 import BearerTokenValidator
    from authlib.oauth2.rfc7636 import CodeChallenge
    from authlib.oidc.core import UserInfoEndpoint
    from authlib.oidc.core.grants import OpenIDCode
    from flask import Flask, jsonify, request
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
    codes: dict[str, Code] = {}
    tokens: dict[str, Token] = {}

    class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
        def save_authorization_code(self, code, req):
            payload = req.payload
            codes[code] = Code(
                code,
                req.client,
                req.user,
                payload.redirect_uri,
                payload.scope,
                payload.data.get("nonce"),
                payload.data.get("code_challenge"),
                payload.data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code, requesting_client):
            found = codes.get(code)
            return found if found and found.client.client_id == requesting_client.client_id else None

        def delete_authorization_code(self, authorization_code):
            codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code):
            return authorization_code.user

    class IdToken(OpenIDCode):
        def exists_nonce(self, nonce, req):
            return any(code.nonce == nonce for code in codes.values())

        def resolve_client_private_key(self, requesting_client):
            return key

        def get_client_claims(self, requesting_client):
            return {"iss": issuer, "aud": [requesting_client.client_id]}

        def generate_user_info(self, user, scope):
            return user_info(user, scope)

    class Userinfo(UserInfoEndpoint):
        def generate_user_info(self, user, scope):
            return user_info(user, scope)

        def get_issuer(self):
            return issuer

        def resolve_private_key(self):
            return key

    class Bearer(BearerTokenValidator):
        def authenticate_token(self, token_string):
            return tokens.get(token_string)

    def save_token(token, req):
        tokens[token["access_token"]] = Token(
            token["access_token"], token.get("scope", ""), req.client, req.user, time.time() + token["expires_in"]
        )

    app = Flask("oidc_provider")
    server = AuthorizationServer(
        app, query_client=lambda client_id: client if client_id == client.client_id else None, save_token=save_token
    )
    server.register_grant(AuthorizationCodeGrant, [IdToken(require_nonce=True), CodeChallenge(required=True)])
    protector = ResourceProtector()
    protector.register_token_validator(Bearer())
    server.register_endpoint(Userinfo(resource_protector=protector))

    @app.get("/.well-known/openid-configuration")
    def discovery():
        return jsonify(
            issuer=issuer,
            authorization_endpoint=f"{issuer}/authorize",
            token_endpoint=f"{issuer}/token",
            userinfo_endpoint=f"{issuer}/userinfo",
            jwks_uri=f"{issuer}/jwks",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            scopes_supported=SCOPES.split(),
            token_endpoint_auth_methods_supported=AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS,
            code_challenge_methods_supported=["S256"],
            claims_supported=["sub", "name", "email", "email_verified"],
        )

    @app.get("/jwks")
    def jwks():
        return jsonify(keys=[key.as_dict(private=False)])

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize():
        if request.method == "GET":
            server.get_consent_grant(end_user=None)  # a bad request is refused before the form
            return (
                '<form method="post"><label>User name <input name="username" autofocus></label>'
                '<button type="submit">Sign in</button></form>'
            )
        user = users.get(request.form.get("username", ""))
        if user is None:
            return "<p>Unknown user.</p>", 403
        grant = server.get_consent_grant(end_user=user)
        return server.create_authorization_response(grant_user=user, grant=grant)

    @app.post("/token")
    def token():
        return server.create_token_response()

    @app.route("/userinfo", methods=["GET", "POST"])
    def userinfo():
        return server.create_endpoint_response("userinfo")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--users", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on the loopback
    users = {name: User(name, claims) for name, claims in json.loads(args.users.read_text()).items()}
    issuer = f"http://127.0.0.1:{args.port}"
    app = create_app(issuer, Client(args.client_id, args.client_secret, args.redirect_uri), users)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
