"""API tokens: random, shown once, stored only as a SHA-256 hash, compared in constant time.

A token is ``<token_id>.<secret>``; the id (not secret) finds the row, then the hash of the
whole token is compared with ``hmac.compare_digest``. Tokens carry 256 bits of entropy, so a
fast hash is enough (no password stretching needed).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> tuple[str, str, str]:
    """(token, token_id, token_hash)."""
    token_id = secrets.token_hex(6)
    token = f"{token_id}.{secrets.token_urlsafe(32)}"
    return token, token_id, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def split_token(token: str) -> str | None:
    """The token id of a well-formed token, else None."""
    if not token or len(token) > 128 or token.count(".") != 1:
        return None
    token_id = token.split(".", 1)[0]
    return token_id if len(token_id) == 12 else None


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
