"""Bearer tokens: remit's own (RS256, a key generated on first start) or an external OIDC issuer.

Verification pins the algorithms, requires ``exp``/``iat``/``nbf``/``iss``/``aud``/``sub``,
selects the key only by ``kid`` from remit's own key or the configured JWKS (never from the
token's own ``jwk``/``jku``/``x5u`` headers), and rejects anything else with one message.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from remit.errors import Unauthenticated
from remit.settings import Settings

KEY_FILE = "signing-key.pem"
LOCAL_ALGORITHM = "RS256"
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit"})
LEEWAY = timedelta(seconds=30)


def load_or_create_key(data_dir: Path) -> rsa.RSAPrivateKey:
    """The local signing key, created with mode 0600 on first use."""
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race; read its key below
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise RuntimeError(f"{path} does not hold an RSA private key")
    return loaded


def _kid(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:16]).decode().rstrip("=")


@dataclass(frozen=True)
class Identity:
    """What a verified token says about its caller, before the directory is consulted."""

    subject: str  # remit user id (local tokens) or the configured claim's value (OIDC)
    by_upn: bool  # True when ``subject`` is a userPrincipalName rather than an object id


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key = load_or_create_key(settings.data_dir)
        self._public = self._key.public_key()
        self.kid = _kid(self._key)
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        if settings.oidc_issuer:
            if not (settings.oidc_audience and settings.oidc_jwks_url):
                raise RuntimeError("OIDC needs REMIT_OIDC_AUDIENCE and REMIT_OIDC_JWKS_URL too")
            self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=3600)

    def issue(self, user_id: str, upn: str, *, now: datetime, ttl: timedelta | None = None) -> str:
        ttl = ttl or timedelta(seconds=self.settings.token_ttl_seconds)
        claims = {
            "iss": self.settings.token_issuer,
            "aud": self.settings.token_audience,
            "sub": user_id,
            "upn": upn,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": base64.urlsafe_b64encode(os.urandom(12)).decode(),
        }
        return jwt.encode(claims, self._key, algorithm=LOCAL_ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str, *, now: datetime) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the bearer token is malformed") from exc
        if FORBIDDEN_HEADERS & set(header):
            raise Unauthenticated("the bearer token carries key material in its header")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("the bearer token names no key")
        if kid == self.kid:
            claims = self._decode(
                token,
                self._public,
                [LOCAL_ALGORITHM],
                self.settings.token_issuer,
                self.settings.token_audience,
                now,
            )
            return Identity(str(claims["sub"]), by_upn=False)
        if self._jwks is None:
            raise Unauthenticated("the bearer token was signed by an unknown key")
        algorithms = [a.strip() for a in self.settings.oidc_algorithms.split(",") if a.strip()]
        if header.get("alg") not in algorithms:
            raise Unauthenticated("the bearer token uses an algorithm that is not allowed")
        try:
            with self._lock:
                signing_key = self._jwks.get_signing_key(kid).key
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the bearer token was signed by an unknown key") from exc
        claims = self._decode(
            token,
            signing_key,
            algorithms,
            self.settings.oidc_issuer,
            self.settings.oidc_audience,
            now,
        )
        claim = self.settings.oidc_user_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise Unauthenticated(f"the bearer token has no {claim} claim")
        return Identity(value, by_upn=claim in ("upn", "preferred_username", "email"))

    @staticmethod
    def _decode(
        token: str, key: Any, algorithms: list[str], issuer: str, audience: str, now: datetime
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=issuer,
                audience=audience,
                leeway=LEEWAY,
                # Times are checked below against remit's clock, not the wall clock.
                options={
                    "require": ["exp", "iat", "nbf", "iss", "aud", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    # A short RSA key in the JWKS is refused rather than merely warned about.
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the bearer token is not valid") from exc
        except (TypeError, ValueError) as exc:
            # PyJWT raises TypeError when the JWKS key's type does not fit the token's alg
            # (an EC key under "RS256"): a bad token, not a server fault.
            raise Unauthenticated("the bearer token is not valid") from exc
        times = [claims[c] for c in ("exp", "nbf", "iat")]
        # bool is an int, and NaN (which json accepts) compares false with everything.
        if not all(
            isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
            for t in times
        ):
            raise Unauthenticated("the bearer token's times are not finite numbers")
        ts, leeway = now.timestamp(), LEEWAY.total_seconds()
        exp, nbf, iat = times
        if exp <= ts - leeway:
            raise Unauthenticated("the bearer token has expired")
        if nbf > ts + leeway or iat > ts + leeway:
            raise Unauthenticated("the bearer token is not valid yet")
        return claims
