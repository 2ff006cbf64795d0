"""Bearer tokens: remit's own (RS256, a key generated on first start) or an external OIDC issuer.

Verification pins the algorithms, requires ``exp``/``iss``/``aud``/``sub`` (and ``iat``/``nbf``
on remit's own tokens), selects the key only by ``kid`` from remit's own key or the configured
JWKS (never from the token's own ``jwk``/``jku``/``x5u`` headers), bounds a token's life (see
``Lifetime``), and rejects anything else with one message.
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

from remit import datadir
from remit.errors import Invalid, Unauthenticated
from remit.settings import Settings

KEY_FILE = "signing-key.pem"
LOCAL_ALGORITHM = "RS256"
FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit"})
LEEWAY = timedelta(seconds=30)
# RFC 7519 makes every claim optional; remit's own tokens always carry iat and nbf, and common
# OIDC providers leave out nbf (and some iat), so only the first list is asked of them.
LOCAL_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "sub")
EXTERNAL_CLAIMS = ("exp", "iss", "aud", "sub")


def load_or_create_key(data_dir: Path) -> rsa.RSAPrivateKey:
    """The local signing key, created with mode 0600 on first use.

    Every start passes here (the server and ``remit token``): the data directory is made 0700,
    or tightened with what remit keeps in it (``remit.datadir``).
    """
    path = data_dir / KEY_FILE
    datadir.private_data_dir(data_dir)
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        datadir.create_private(path, pem)  # False: another process won; read its key below
    loaded = serialization.load_pem_private_key(datadir.read_private(path), password=None)
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


@dataclass(frozen=True)
class Lifetime:
    """When a verified token may be used (seconds since the epoch), from its claims and remit's
    bounds. A first verification and ``VerifiedTokens``' remembered tokens use the same check."""

    starts: float  # the latest of nbf and iat, of those present (-inf when neither is)
    ends: float  # exp, or sooner the external issuer's iat + the maximum age
    by_age: bool  # ``ends`` is the maximum age, not exp

    def check(self, now: datetime) -> None:
        ts, leeway = now.timestamp(), LEEWAY.total_seconds()
        if self.ends <= ts - leeway:
            if self.by_age:
                raise Unauthenticated("the bearer token is older than the maximum token age")
            raise Unauthenticated("the bearer token has expired")
        if self.starts > ts + leeway:
            raise Unauthenticated("the bearer token is not valid yet")


@dataclass(frozen=True)
class Verified:
    identity: Identity
    lifetime: Lifetime


def _finite(value: Any) -> bool:
    # bool is an int, and NaN or Infinity (which json accepts) compare oddly with everything.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._check_ttl(settings.token_ttl_seconds, "REMIT_TOKEN_TTL_SECONDS")
        self._key = load_or_create_key(settings.data_dir)
        self._public = self._key.public_key()
        self.kid = _kid(self._key)
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        if settings.oidc_issuer:
            if not (settings.oidc_audience and settings.oidc_jwks_url):
                raise RuntimeError("OIDC needs REMIT_OIDC_AUDIENCE and REMIT_OIDC_JWKS_URL too")
            self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=3600)

    def _check_ttl(self, seconds: float, name: str) -> None:
        """A token remit would refuse is not issued (nor configured as the default)."""
        most = self.settings.token_max_lifetime_seconds
        if seconds > most:
            raise Invalid(
                f"{name} ({seconds:g} seconds) exceeds REMIT_TOKEN_MAX_LIFETIME_SECONDS ({most})"
            )

    def issue(self, user_id: str, upn: str, *, now: datetime, ttl: timedelta | None = None) -> str:
        if ttl is not None:
            self._check_ttl(ttl.total_seconds(), "the token's lifetime")
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
        return self.verified(token, now=now).identity

    def verified(self, token: str, *, now: datetime) -> Verified:
        """The token's identity and lifetime, or ``Unauthenticated`` unless it is good now."""
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
                LOCAL_CLAIMS,
            )
            lifetime = self._local_lifetime(claims)
            lifetime.check(now)
            return Verified(Identity(str(claims["sub"]), by_upn=False), lifetime)
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
            EXTERNAL_CLAIMS,
        )
        lifetime = self._external_lifetime(claims, now)
        lifetime.check(now)
        claim = self.settings.oidc_user_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise Unauthenticated(f"the bearer token has no {claim} claim")
        identity = Identity(value, by_upn=claim in ("upn", "preferred_username", "email"))
        return Verified(identity, lifetime)

    @staticmethod
    def _times(claims: dict[str, Any]) -> tuple[float, float | None, float | None]:
        """exp, nbf and iat (the last two None when absent), each a finite number."""
        exp, nbf, iat = (claims.get(c) for c in ("exp", "nbf", "iat"))
        if not all(_finite(t) for t in (exp, nbf, iat) if t is not None) or exp is None:
            raise Unauthenticated("the bearer token's times are not finite numbers")
        return exp, nbf, iat

    def _local_lifetime(self, claims: dict[str, Any]) -> Lifetime:
        """remit's own token: iat and nbf are required, and exp - iat is at most the maximum
        lifetime (a correctly signed token with exp = 1e300 is not a token for ever)."""
        exp, nbf, iat = self._times(claims)
        if nbf is None or iat is None:  # required by LOCAL_CLAIMS already: for the type
            raise Unauthenticated("the bearer token is not valid")
        if exp - iat > self.settings.token_max_lifetime_seconds:
            raise Unauthenticated("the bearer token's lifetime exceeds the maximum")
        return Lifetime(starts=max(nbf, iat), ends=exp, by_age=False)

    def _external_lifetime(self, claims: dict[str, Any], now: datetime) -> Lifetime:
        """An external issuer's token: with iat, it ends at iat + the maximum age if exp is
        later; without iat, exp may be at most the maximum age away from now (docs/decisions/
        0021): either way no token stays good for longer than the maximum age from now."""
        exp, nbf, iat = self._times(claims)
        most = self.settings.oidc_max_token_age_seconds
        starts = max((t for t in (nbf, iat) if t is not None), default=-math.inf)
        if iat is None:
            if exp - now.timestamp() > most + LEEWAY.total_seconds():
                raise Unauthenticated("the bearer token's lifetime exceeds the maximum")
            return Lifetime(starts=starts, ends=exp, by_age=False)
        if iat + most < exp:
            return Lifetime(starts=starts, ends=iat + most, by_age=True)
        return Lifetime(starts=starts, ends=exp, by_age=False)

    @staticmethod
    def _decode(
        token: str,
        key: Any,
        algorithms: list[str],
        issuer: str,
        audience: str,
        required: tuple[str, ...],
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
                    "require": list(required),
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
        return claims
