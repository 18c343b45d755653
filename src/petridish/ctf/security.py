"""API tokens: random, shown once, stored only as a SHA-256 hash, compared in constant time.

A token is ``<token_id>.<secret>``; the id (not secret) finds the row, then the hash of the
whole token is compared with ``hmac.compare_digest``. Tokens carry 256 bits of entropy, so a
fast hash is enough (no password stretching needed).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time


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


def new_secret() -> tuple[str, str]:
    """(secret, sha256 hex): browser session ids and invitation codes (256 bits each)."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_token(secret)


class SlidingWindow:
    """At most `limit` events per key in any `window_s` seconds (registrations per client address).

    Memory is bounded: at most `max_keys` addresses are tracked; past that the oldest is dropped.
    """

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000):
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._events: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str, now: float | None = None) -> float:
        """0 when one more event is allowed now, else the seconds until it is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._events.get(key, ()) if t > now - self.window_s]
            self._events[key] = recent
            return 0.0 if len(recent) < self.limit else recent[0] + self.window_s - now

    def record(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._events.setdefault(key, []).append(now)
            while len(self._events) > self.max_keys:
                self._events.pop(next(iter(self._events)))
