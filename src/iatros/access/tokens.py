"""Signed bearer tokens (JWT, HS256, with expiry) for logged-in users. The signing secret is
required (`IATROS_SERVE_SECRET`, at least 32 characters); there is no default."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from iatros.access.store import AccessError
from iatros.errors import ConfigError

SECRET_ENV = "IATROS_SERVE_SECRET"
MIN_SECRET = 32
ISSUER = "iatros"
ALGORITHM = "HS256"


def require_secret(secret: str | None = None) -> str:
    """The token-signing secret given or from the environment; refuse a missing or short one."""
    value = secret if secret is not None else os.environ.get(SECRET_ENV)
    if not value:
        raise ConfigError(f"the service needs a token-signing secret: set {SECRET_ENV} to a random "
                          f"string of at least {MIN_SECRET} characters (for example the output "
                          f"of `python -c \"import secrets; print(secrets.token_urlsafe(48))\"`)")
    if len(value) < MIN_SECRET:
        raise ConfigError(f"{SECRET_ENV} is too short: use at least {MIN_SECRET} characters")
    return value


@dataclass(frozen=True)
class TokenIssuer:
    """Issues and checks access tokens with one secret."""

    secret: str
    ttl_seconds: int = 3600

    def issue(self, user: str, role: str) -> str:
        import jwt

        now = int(time.time())
        claims = {"sub": user, "role": role, "iss": ISSUER, "iat": now, "exp": now + self.ttl_seconds}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def subject(self, token: str) -> str:
        """The user a valid token names; expired, forged or malformed tokens are refused."""
        import jwt

        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.ExpiredSignatureError:
            raise AccessError("the access token has expired; log in again") from None
        except jwt.InvalidTokenError:
            raise AccessError("the access token is not valid (malformed or not signed by this "
                              "service)") from None
        return str(claims["sub"])
