"""R10: forged, stale or misdirected bearer tokens never pass (QUALITY.md R10).

Every kind in ``BAD_TOKENS`` goes to a read (``GET /me``) and to a write (``POST catalogs``) as
Hana, who could create a catalog with a good token. Each must get 401 with a Graph error body and
a ``WWW-Authenticate`` challenge, and the write must change nothing. A control test signs a good
token with the same helpers, so a case fails only through what it changes.

The second half runs the external OIDC path against a JWKS served over loopback by
``http.server``: a good IdP token signs in, and algorithm, issuer, audience, key and claim
mistakes are refused without fetching keys from anywhere but the configured JWKS URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import func, select

from remit.api.state import AppState
from remit.app import create_app
from remit.db import Database
from remit.errors import Invalid
from remit.models.audit import AuditEvent
from remit.models.catalogs import Catalog
from remit.settings import Settings
from remit.tokens import TokenService, load_or_create_key
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant, upn

ME = "/v1.0/me"
CATALOGS = f"{EM}/catalogs"
OIDC_ISSUER = "https://login.idp.example/tenant-1/v2.0"
OIDC_AUDIENCE = "api://remit"

# One attacker key for the whole module: RSA generation is slow and the key's secrecy is moot.
ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64json(header)}.{b64json(claims)}.{b64url(signature)}"


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url(signature)}"


# ---------------------------------------------------------------- remit's own tokens


@dataclass
class Forge:
    """Crafts tokens against one running app: its signing key, kid, issuer, audience and clock."""

    t: Tenant
    settings: Settings
    clock: SteppingClock
    key: rsa.RSAPrivateKey
    kid: str

    def claims(self, alias: str = "hana", **changes: Any) -> dict[str, Any]:
        """Good claims for ``alias``; a change to ``None`` drops that claim."""
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": self.settings.token_issuer,
            "aud": self.settings.token_audience,
            "sub": self.t.ids[alias],
            "upn": upn(alias),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: rsa.RSAPrivateKey | None = None,
        alg: str = "RS256",
        kid: str | None = "",
        **headers: Any,
    ) -> str:
        """Sign with remit's key unless told otherwise; ``kid=""`` means remit's own kid."""
        extra: dict[str, Any] = dict(headers)
        if kid is not None:
            extra["kid"] = kid or self.kid
        return jwt.encode(
            claims if claims is not None else self.claims(),
            key or self.key,
            algorithm=alg,
            headers=extra,
        )

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": "RS256", "typ": "JWT", "kid": self.kid, **changes}


Case = Callable[[Forge], str | None]  # → the whole Authorization header value, or None


def bearer(token: str) -> str:
    return f"Bearer {token}"


def _alg_none(f: Forge) -> str:
    return bearer(compact(f.header(alg="none"), f.claims()))


def _alg_none_with_signature(f: Forge) -> str:
    good = f.sign().split(".")
    return bearer(f"{b64json(f.header(alg='none'))}.{good[1]}.{good[2]}")


def _hs256_with_public_key(f: Forge) -> str:
    # Classic RS/HS confusion: the verifier's public key used as the HMAC secret.
    return bearer(hs256(f.header(alg="HS256"), f.claims(), public_pem(f.key)))


def _rs512_own_key(f: Forge) -> str:
    return bearer(f.sign(alg="RS512"))


def _ps256_own_key(f: Forge) -> str:
    return bearer(f.sign(alg="PS256"))


def _wrong_issuer(f: Forge) -> str:
    return bearer(f.sign(f.claims(iss="https://evil.example/")))


def _wrong_audience(f: Forge) -> str:
    return bearer(f.sign(f.claims(aud="some-other-api")))


def _no_audience(f: Forge) -> str:
    return bearer(f.sign(f.claims(aud=None)))


def _expired(f: Forge) -> str:
    now = int(f.clock().timestamp())
    return bearer(f.sign(f.claims(iat=now - 7200, nbf=now - 7200, exp=now - 60)))


def _expired_by_the_clock(f: Forge) -> str:
    state: AppState = f.t.client.app.state.remit  # type: ignore[attr-defined]
    token = state.tokens.issue(f.t.ids["hana"], upn("hana"), now=f.clock())
    f.clock.advance(seconds=f.settings.token_ttl_seconds + 60)
    return bearer(token)


def _not_before_in_future(f: Forge) -> str:
    return bearer(f.sign(f.claims(nbf=int(f.clock().timestamp()) + 600)))


def _issued_in_future(f: Forge) -> str:
    return bearer(f.sign(f.claims(iat=int(f.clock().timestamp()) + 600)))


def _unknown_kid(f: Forge) -> str:
    return bearer(f.sign(kid="another-remit-2024"))


def _no_kid(f: Forge) -> str:
    return bearer(f.sign(kid=None))


def _kid_not_a_string(f: Forge) -> str:
    return bearer(compact(f.header(kid=7), f.claims(), b"x" * 256))


def _embedded_jwk(f: Forge) -> str:
    return bearer(f.sign(key=ATTACKER_KEY, jwk=public_jwk(ATTACKER_KEY, f.kid)))


def _jku_header(f: Forge) -> str:
    return bearer(f.sign(key=ATTACKER_KEY, jku="http://127.0.0.1:9/.well-known/jwks.json"))


def _x5u_header(f: Forge) -> str:
    return bearer(f.sign(key=ATTACKER_KEY, x5u="http://127.0.0.1:9/cert.pem"))


def _crit_header(f: Forge) -> str:
    return bearer(f.sign(crit=["exp"]))


def _tampered_payload(f: Forge) -> str:
    header, _, signature = f.sign().split(".")
    escalated = f.claims(sub=f.t.ids["admin"], upn=upn("admin"))
    return bearer(f"{header}.{b64json(escalated)}.{signature}")


def _signature_stripped(f: Forge) -> str:
    header, payload, _ = f.sign().split(".")
    return bearer(f"{header}.{payload}.")


def _two_segments(f: Forge) -> str:
    header, payload, _ = f.sign().split(".")
    return bearer(f"{header}.{payload}")


def _other_key_with_remit_kid(f: Forge) -> str:
    return bearer(f.sign(key=ATTACKER_KEY))


def _disabled_user(f: Forge) -> str:
    token = f.sign(f.claims("mamta"))
    assert f.t.get("mamta", ME).status_code == 200
    r = f.t.call("admin", "PATCH", f"/v1.0/users/{f.t.ids['mamta']}", {"accountEnabled": False})
    assert r.status_code == 204, r.text
    return bearer(token)


def _unknown_user(f: Forge) -> str:
    return bearer(f.sign(f.claims(sub=str(uuid.uuid4()))))


def _upn_as_subject(f: Forge) -> str:
    # remit's own tokens name the user by object id; a UPN there names nobody.
    return bearer(f.sign(f.claims(sub=upn("hana"))))


def _missing_subject(f: Forge) -> str:
    return bearer(f.sign(f.claims(sub=None)))


def _empty_subject(f: Forge) -> str:
    return bearer(f.sign(f.claims(sub="")))


def _missing_expiry(f: Forge) -> str:
    return bearer(f.sign(f.claims(exp=None)))


def _expiry_not_a_number(f: Forge) -> str:
    return bearer(f.sign(f.claims(exp="9999999999")))


def _expiry_boolean(f: Forge) -> str:
    return bearer(f.sign(f.claims(exp=True)))


def _expiry_nan(f: Forge) -> str:
    # json.dumps writes NaN and json.loads reads it back; NaN compares false with everything.
    return bearer(f.sign(f.claims(exp=float("nan"))))


def _not_before_nan(f: Forge) -> str:
    return bearer(f.sign(f.claims(nbf=float("nan"), iat=float("nan"))))


def _missing_issued_at(f: Forge) -> str:
    # RFC 7519 makes iat optional; remit's own tokens always carry it, so one without is forged.
    return bearer(f.sign(f.claims(iat=None)))


def _missing_not_before(f: Forge) -> str:
    return bearer(f.sign(f.claims(nbf=None)))


def _expiry_far_future(f: Forge) -> str:
    # Correctly signed (with the server's own key), good for ever: a stolen key's dream.
    return bearer(f.sign(f.claims(exp=1e300)))


def _expiry_infinity(f: Forge) -> str:
    return bearer(f.sign(f.claims(exp=float("inf"))))


def _lifetime_over_the_maximum(f: Forge) -> str:
    now = int(f.clock().timestamp())
    return bearer(f.sign(f.claims(exp=now + f.settings.token_max_lifetime_seconds + 1)))


def _issued_long_ago_still_unexpired(f: Forge) -> str:
    # exp - iat is what is bounded, so an old iat does not buy a longer life.
    now = int(f.clock().timestamp())
    return bearer(f.sign(f.claims(iat=now - 40 * 24 * 3600, exp=now + 3600)))


def _garbage(_f: Forge) -> str:
    return bearer("not-a-jwt")


def _three_garbage_segments(_f: Forge) -> str:
    return bearer("aaaa.bbbb.cccc")


def _header_not_an_object(f: Forge) -> str:
    return bearer(f"{b64json([1, 2])}.{b64json(f.claims())}.{b64url(b'sig')}")


def _payload_not_json(f: Forge) -> str:
    return bearer(f"{b64json(f.header())}.{b64url(b'{not json')}.{b64url(b'sig')}")


def _basic_scheme(_f: Forge) -> str:
    return "Basic " + base64.b64encode(b"hana@contoso.example:Passw0rd!").decode()


def _good_token_under_another_scheme(f: Forge) -> str:
    return f"Token {f.sign()}"


def _empty_bearer(_f: Forge) -> str:
    return "Bearer "


def _missing_header(_f: Forge) -> None:
    return None


BAD_TOKENS: list[Any] = [
    pytest.param(case, id=case.__name__.lstrip("_").replace("_", "-"))
    for case in (
        _alg_none,
        _alg_none_with_signature,
        _hs256_with_public_key,
        _rs512_own_key,
        _ps256_own_key,
        _wrong_issuer,
        _wrong_audience,
        _no_audience,
        _expired,
        _expired_by_the_clock,
        _not_before_in_future,
        _issued_in_future,
        _unknown_kid,
        _no_kid,
        _kid_not_a_string,
        _embedded_jwk,
        _jku_header,
        _x5u_header,
        _crit_header,
        _tampered_payload,
        _signature_stripped,
        _two_segments,
        _other_key_with_remit_kid,
        _disabled_user,
        _unknown_user,
        _upn_as_subject,
        _missing_subject,
        _empty_subject,
        _missing_expiry,
        _expiry_not_a_number,
        _expiry_boolean,
        _expiry_nan,
        _not_before_nan,
        _missing_issued_at,
        _missing_not_before,
        _expiry_far_future,
        _expiry_infinity,
        _lifetime_over_the_maximum,
        _issued_long_ago_still_unexpired,
        _garbage,
        _three_garbage_segments,
        _header_not_an_object,
        _payload_not_json,
        _basic_scheme,
        _good_token_under_another_scheme,
        _empty_bearer,
        _missing_header,
    )
]


@pytest.fixture
def forge(tenant: Tenant, settings: Settings, clock: SteppingClock) -> Forge:
    state: AppState = tenant.client.app.state.remit  # type: ignore[attr-defined]
    return Forge(tenant, settings, clock, load_or_create_key(settings.data_dir), state.tokens.kid)


def footprint(db: Database) -> tuple[int, int]:
    """What a successful catalog create would change: catalogs and audit events."""
    with db.read() as conn:
        catalogs = conn.execute(select(func.count()).select_from(Catalog)).scalar_one()
        events = conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    return catalogs, events


def assert_unauthenticated(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["www-authenticate"].startswith("Bearer")
    error = r.json()["error"]
    assert error["code"] == "unauthenticated"
    assert isinstance(error["message"], str)
    assert error["message"]
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}


def send(client: TestClient, method: str, path: str, authorization: str | None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"displayName": "Forged", "description": "must not exist"} if method == "POST" else None
    return client.request(method, path, headers=headers, json=body)


def test_control_forged_helpers_make_a_token_that_works(forge: Forge, db: Database) -> None:
    """Without a defect the helpers' tokens pass, so every refusal below is the defect's doing."""
    good = bearer(forge.sign())
    r = send(forge.t.client, "GET", ME, good)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == forge.t.ids["hana"]
    before = footprint(db)
    r = send(forge.t.client, "POST", CATALOGS, good)
    assert r.status_code == 201, r.text
    assert footprint(db)[0] == before[0] + 1
    # Inside the 30 s leeway a token is still good; the expiry cases are past it.
    now = int(forge.clock().timestamp())
    edge = forge.sign(forge.claims(exp=now - 10, nbf=now + 10, iat=now + 10))
    assert send(forge.t.client, "GET", ME, bearer(edge)).status_code == 200


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_bad_token_is_refused_and_changes_nothing(case: Case, forge: Forge, db: Database) -> None:
    authorization = case(forge)
    assert_unauthenticated(send(forge.t.client, "GET", ME, authorization))
    before = footprint(db)
    assert_unauthenticated(send(forge.t.client, "POST", CATALOGS, authorization))
    assert footprint(db) == before


def test_a_token_as_long_as_the_maximum_lifetime_is_good(forge: Forge) -> None:
    now = int(forge.clock().timestamp())
    longest = forge.claims(exp=now + forge.settings.token_max_lifetime_seconds)
    assert send(forge.t.client, "GET", ME, bearer(forge.sign(longest))).status_code == 200


def test_a_token_is_only_read_from_the_authorization_header(forge: Forge) -> None:
    token = forge.sign()
    client = forge.t.client
    assert_unauthenticated(client.get(ME, params={"access_token": token}))
    client.cookies.set("access_token", token)
    try:
        assert_unauthenticated(client.get(ME))
    finally:
        client.cookies.clear()


def test_a_bad_token_is_refused_before_the_request_is_validated(forge: Forge) -> None:
    """No validation detail (or existence hint) for a caller without a good token."""
    client, bad = forge.t.client, {"Authorization": bearer(compact(forge.header(), {}))}
    assert_unauthenticated(client.get(CATALOGS, params={"$top": "x", "$filter": "("}, headers=bad))
    assert_unauthenticated(client.post(CATALOGS, json={"displayName": "x" * 1000}, headers=bad))
    assert_unauthenticated(client.get(f"{CATALOGS}/{uuid.uuid4()}", headers=bad))
    assert_unauthenticated(client.get("/v1.0/users", params={"$select": "!"}, headers=bad))


def test_a_token_that_worked_is_refused_once_it_expires(forge: Forge) -> None:
    """Whatever the app remembers about a verified token, expiry is judged on every request."""
    now = int(forge.clock().timestamp())
    token = bearer(forge.sign(forge.claims(exp=now + 120)))
    assert send(forge.t.client, "GET", ME, token).status_code == 200
    forge.clock.advance(seconds=119)
    assert send(forge.t.client, "GET", ME, token).status_code == 200
    forge.clock.advance(seconds=1 + 31)  # past exp and the 30 s leeway
    assert_unauthenticated(send(forge.t.client, "GET", ME, token))
    assert_unauthenticated(send(forge.t.client, "POST", CATALOGS, token))


def test_a_disabled_user_is_refused_from_the_very_next_request(forge: Forge) -> None:
    token = bearer(forge.sign(forge.claims("mamta")))
    assert send(forge.t.client, "GET", ME, token).status_code == 200
    r = forge.t.call(
        "admin", "PATCH", f"/v1.0/users/{forge.t.ids['mamta']}", {"accountEnabled": False}
    )
    assert r.status_code == 204, r.text
    assert_unauthenticated(send(forge.t.client, "GET", ME, token))
    r = forge.t.call(
        "admin", "PATCH", f"/v1.0/users/{forge.t.ids['mamta']}", {"accountEnabled": True}
    )
    assert r.status_code == 204, r.text
    assert send(forge.t.client, "GET", ME, token).status_code == 200


def test_remit_does_not_issue_a_token_it_would_refuse(
    forge: Forge, settings: Settings, db: Database
) -> None:
    """An explicit lifetime above the maximum is refused, and so is a default (the setting)
    above it: a server so configured does not start, and the CLI says why in one line."""
    state: AppState = forge.t.client.app.state.remit  # type: ignore[attr-defined]
    most = settings.token_max_lifetime_seconds
    longest = state.tokens.issue(
        forge.t.ids["hana"], upn("hana"), now=forge.clock(), ttl=timedelta(seconds=most)
    )
    assert send(forge.t.client, "GET", ME, bearer(longest)).status_code == 200
    with pytest.raises(Invalid, match="REMIT_TOKEN_MAX_LIFETIME_SECONDS"):
        state.tokens.issue(
            forge.t.ids["hana"], upn("hana"), now=forge.clock(), ttl=timedelta(seconds=most + 1)
        )
    too_long = settings.model_copy(update={"token_ttl_seconds": most + 60})
    with pytest.raises(Invalid, match="REMIT_TOKEN_TTL_SECONDS"):
        TokenService(too_long)

    env = {**os.environ, "REMIT_DATABASE_URL": db.url, "REMIT_DATA_DIR": str(settings.data_dir)}
    env["REMIT_TOKEN_MAX_LIFETIME_SECONDS"] = str(most)
    for extra_env, ttl in (({}, most + 1), ({"REMIT_TOKEN_TTL_SECONDS": str(most + 60)}, 600)):
        command = ["token", "issue", "--user", upn("hana"), "--ttl", str(ttl)]
        issued = subprocess.run(
            [sys.executable, "-m", "remit", *command],
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            timeout=60,
            check=False,
        )
        assert issued.returncode == 1, issued.stdout
        lines = issued.stderr.strip().splitlines()
        assert len(lines) == 1, issued.stderr
        assert lines[0].startswith("remit: error: ")
        assert "exceeds REMIT_TOKEN_MAX_LIFETIME_SECONDS" in lines[0]
        assert "eyJ" not in issued.stdout  # no token printed (a JWT starts with {" in base64)


# ---------------------------------------------------------------- external OIDC issuer


@dataclass
class KeyServer:
    """A JWKS document served on loopback; counts what it was asked for."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def serve_keys() -> Iterator[Callable[[], KeyServer]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start() -> KeyServer:
        keys = KeyServer()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                keys.hits.append(self.path)
                body = json.dumps({"keys": keys.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the serving loop to look up.
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        servers.append((server, thread))
        keys.url = f"http://127.0.0.1:{server.server_address[1]}/discovery/v2.0/keys"
        return keys

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


IDP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
IDP_KID = "idp-2026-01"


@dataclass
class Idp:
    t: Tenant
    client: TestClient
    clock: SteppingClock
    settings: Settings
    jwks: KeyServer
    attacker: KeyServer

    def claims(
        self, username: str | None = "Mamta@Contoso.Example", **changes: Any
    ) -> dict[str, Any]:
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": OIDC_ISSUER,
            "aud": OIDC_AUDIENCE,
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "oid": str(uuid.uuid4()),
            "preferred_username": username,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: Any = None,
        alg: str = "RS256",
        kid: str = IDP_KID,
        **headers: Any,
    ) -> str:
        return jwt.encode(
            claims if claims is not None else self.claims(),
            key or IDP_KEY,
            algorithm=alg,
            headers={"kid": kid, **headers},
        )

    def me(self, token: str) -> Any:
        return self.client.get(ME, headers={"Authorization": bearer(token)})


@pytest.fixture
def idp(
    db: Database,
    settings: Settings,
    clock: SteppingClock,
    serve_keys: Callable[[], KeyServer],
) -> Iterator[Idp]:
    jwks, attacker = serve_keys(), serve_keys()
    jwks.keys.append(public_jwk(IDP_KEY, IDP_KID))
    attacker.keys.append(public_jwk(ATTACKER_KEY, IDP_KID))
    oidc = settings.model_copy(
        update={
            "oidc_issuer": OIDC_ISSUER,
            "oidc_audience": OIDC_AUDIENCE,
            "oidc_jwks_url": jwks.url,
            "oidc_user_claim": "preferred_username",
        }
    )
    app = create_app(oidc, db=db, clock=clock)
    with TestClient(app, base_url="http://remit.test") as client:
        yield Idp(Tenant.build(db, client, clock), client, clock, oidc, jwks, attacker)


def test_oidc_token_from_the_configured_issuer_signs_in(idp: Idp) -> None:
    r = idp.me(idp.sign())
    assert r.status_code == 200, r.text
    assert r.json()["id"] == idp.t.ids["mamta"]  # matched on the UPN, case-insensitively
    assert idp.jwks.hits  # the key came from the configured JWKS


@pytest.mark.parametrize(
    "dropped",
    [("nbf",), ("iat",), ("nbf", "iat")],
    ids=["without-nbf", "without-iat", "without-nbf-or-iat"],
)
def test_oidc_token_without_optional_times_signs_in(idp: Idp, dropped: tuple[str, ...]) -> None:
    """RFC 7519 makes nbf and iat optional, and common providers leave out nbf: an otherwise
    good token without them signs in (its exp, within the maximum age, bounds it)."""
    token = idp.sign(idp.claims(**dict.fromkeys(dropped)))
    r = idp.me(token)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == idp.t.ids["mamta"]
    idp.clock.advance(seconds=3600 + 31)  # past its exp and the leeway, even when remembered
    assert_unauthenticated(idp.me(token))


def test_oidc_token_is_refused_once_older_than_the_maximum_age(idp: Idp) -> None:
    """A far exp does not outlive the maximum age from iat, also for a remembered token."""
    token = idp.sign(idp.claims(exp=1e300))
    assert idp.me(token).status_code == 200
    idp.clock.advance(seconds=idp.settings.oidc_max_token_age_seconds - 60)
    assert idp.me(token).status_code == 200
    idp.clock.advance(seconds=60 + 31)  # past the maximum age and the leeway
    r = idp.me(token)
    assert_unauthenticated(r)
    assert "maximum token age" in r.json()["error"]["message"]


def _oidc_rs512(idp: Idp) -> str:
    return idp.sign(alg="RS512")  # a real IdP signature, but not a pinned algorithm


def _oidc_hs256_with_public_key(idp: Idp) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": IDP_KID}
    return hs256(header, idp.claims(), public_pem(IDP_KEY))


def _oidc_alg_none(idp: Idp) -> str:
    return compact({"alg": "none", "typ": "JWT", "kid": IDP_KID}, idp.claims())


def _oidc_wrong_issuer(idp: Idp) -> str:
    return idp.sign(idp.claims(iss="https://login.idp.example/another-tenant/v2.0"))


def _oidc_remit_issuer(idp: Idp) -> str:
    return idp.sign(idp.claims(iss="remit", aud="remit-api"))


def _oidc_wrong_audience(idp: Idp) -> str:
    return idp.sign(idp.claims(aud="api://someone-else"))


def _oidc_kid_not_in_jwks(idp: Idp) -> str:
    return idp.sign(key=ATTACKER_KEY, kid="rotated-away")


def _oidc_other_key_with_known_kid(idp: Idp) -> str:
    return idp.sign(key=ATTACKER_KEY)


def _oidc_jku_to_attacker_keys(idp: Idp) -> str:
    return idp.sign(key=ATTACKER_KEY, jku=idp.attacker.url)


def _oidc_expired(idp: Idp) -> str:
    now = int(idp.clock().timestamp())
    return idp.sign(idp.claims(iat=now - 7200, nbf=now - 7200, exp=now - 120))


def _oidc_older_than_the_maximum_age(idp: Idp) -> str:
    # Still unexpired by its own exp, but issued longer ago than remit accepts.
    now, most = int(idp.clock().timestamp()), idp.settings.oidc_max_token_age_seconds
    return idp.sign(idp.claims(iat=now - most - 60, nbf=now - most - 60, exp=now + 3600))


def _oidc_far_expiry_without_iat(idp: Idp) -> str:
    # Without iat its age is unknown: exp may then be at most the maximum age away.
    return idp.sign(idp.claims(iat=None, nbf=None, exp=1e300))


def _oidc_expiry_beyond_the_maximum_age_without_iat(idp: Idp) -> str:
    now, most = int(idp.clock().timestamp()), idp.settings.oidc_max_token_age_seconds
    return idp.sign(idp.claims(iat=None, exp=now + most + 120))


def _oidc_missing_expiry(idp: Idp) -> str:
    return idp.sign(idp.claims(exp=None))


def _oidc_expired_without_nbf_or_iat(idp: Idp) -> str:
    now = int(idp.clock().timestamp())
    return idp.sign(idp.claims(iat=None, nbf=None, exp=now - 120))


def _oidc_issued_at_nan(idp: Idp) -> str:
    return idp.sign(idp.claims(iat=float("nan"), nbf=None))


def _oidc_not_before_in_future_without_iat(idp: Idp) -> str:
    return idp.sign(idp.claims(iat=None, nbf=int(idp.clock().timestamp()) + 600))


def _oidc_no_username_claim(idp: Idp) -> str:
    return idp.sign(idp.claims(username=None))


def _oidc_unknown_user(idp: Idp) -> str:
    return idp.sign(idp.claims(username="stranger@contoso.example"))


def _oidc_disabled_user(idp: Idp) -> str:
    r = idp.t.call("admin", "PATCH", f"/v1.0/users/{idp.t.ids['mamta']}", {"accountEnabled": False})
    assert r.status_code == 204, r.text
    return idp.sign()


def _oidc_ec_key_under_rs256(idp: Idp) -> str:
    # The JWKS publishes an EC key under this kid; the token claims RS256 for it.
    idp.jwks.keys.append(public_jwk(ec.generate_private_key(ec.SECP256R1()), "idp-ec"))
    return compact({"alg": "RS256", "typ": "JWT", "kid": "idp-ec"}, idp.claims(), b"s" * 256)


def _oidc_weak_rsa_key(idp: Idp) -> str:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    idp.jwks.keys.append(public_jwk(weak, "idp-weak"))
    header, claims = {"alg": "RS256", "typ": "JWT", "kid": "idp-weak"}, idp.claims()
    # Signed by hand: PyJWT's encoder warns about the short key (warnings are errors here).
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input, weak)
    return f"{signing_input.decode()}.{b64url(signature)}"


BAD_OIDC_TOKENS: list[Any] = [
    pytest.param(case, id=case.__name__.removeprefix("_oidc_").replace("_", "-"))
    for case in (
        _oidc_rs512,
        _oidc_hs256_with_public_key,
        _oidc_alg_none,
        _oidc_wrong_issuer,
        _oidc_remit_issuer,
        _oidc_wrong_audience,
        _oidc_kid_not_in_jwks,
        _oidc_other_key_with_known_kid,
        _oidc_jku_to_attacker_keys,
        _oidc_expired,
        _oidc_older_than_the_maximum_age,
        _oidc_far_expiry_without_iat,
        _oidc_expiry_beyond_the_maximum_age_without_iat,
        _oidc_missing_expiry,
        _oidc_expired_without_nbf_or_iat,
        _oidc_issued_at_nan,
        _oidc_not_before_in_future_without_iat,
        _oidc_no_username_claim,
        _oidc_unknown_user,
        _oidc_disabled_user,
        _oidc_ec_key_under_rs256,
        _oidc_weak_rsa_key,
    )
]


@pytest.mark.parametrize("case", BAD_OIDC_TOKENS)
def test_bad_oidc_token_is_refused(case: Callable[[Idp], str], idp: Idp, db: Database) -> None:
    token = case(idp)
    assert_unauthenticated(idp.me(token))
    before = footprint(db)
    r = idp.client.post(
        CATALOGS, headers={"Authorization": bearer(token)}, json={"displayName": "Forged"}
    )
    assert_unauthenticated(r)
    assert footprint(db) == before
    assert idp.attacker.hits == []  # keys only ever come from the configured JWKS URL
