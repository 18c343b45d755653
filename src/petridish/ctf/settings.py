"""Typed settings of the referee (pydantic-settings, environment prefix ``PETRIDISH_CTF_``).

The admin secret is required: there is no placeholder default. Every other setting has a
safe default and can be given as an environment variable, e.g. ``PETRIDISH_CTF_DAILY_LIMIT=5``.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from petridish.web import load_typed_settings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PETRIDISH_CTF_", extra="ignore")

    admin_secret: SecretStr = Field(min_length=16, description="required; at least 16 characters")
    db_url: str | None = None                  # None: sqlite:///<data_dir>/ctf.sqlite (WAL)
    data_dir: Path = Path("petridish-ctf")     # task arrays and submitted models live here
    max_model_bytes: int = Field(default=5 * 2**20, gt=0)     # upload cap, bytes
    opset_min: int = Field(default=7, ge=1)    # allowed range of the ai.onnx opset (skl2onnx emits 9)
    opset_max: int = Field(default=23, ge=1)
    daily_limit: int = Field(default=20, gt=0)  # default submissions per competitor per task per UTC day
    decimals: int = Field(default=5, ge=0, le=10)    # default rounding of displayed scores
    score_timeout_s: float = Field(default=30.0, gt=0)   # wall clock per scoring
    score_memory_mb: int = Field(default=2048, gt=64)    # RLIMIT_AS of the scoring process
    score_cpu_s: int = Field(default=60, gt=0)            # RLIMIT_CPU of the scoring process
    scoring_workers: int = Field(default=2, gt=0)         # scoring processes at a time
    max_arrays_bytes: int = Field(default=512 * 2**20, gt=0)   # admin task upload cap
    batch_size: int = Field(default=1024, gt=0)           # rows per onnxruntime call
    # who may register (issue 11): open registration is throttled per client address; an admin
    # can close it (then only invitations or admin-issued tokens get in)
    registration_open: bool = True                  # the default until an admin changes it
    registrations_per_hour: int = Field(default=10, ge=1, le=10**6)   # per client address
    max_competitors_per_task: int | None = Field(default=None, ge=1, le=10**6)   # None: no cap
    # the HTTP front (petridish.ctf.serving): timeouts and caps against slow or hostile clients
    header_timeout_s: float = Field(default=10.0, gt=0)   # a request's headers must arrive within
    body_timeout_s: float = Field(default=60.0, gt=0)     # a request's whole body must arrive within
    keep_alive_s: float = Field(default=5.0, gt=0)        # idle keep-alive connections close after
    max_connections: int = Field(default=1000, ge=8)      # open connections (also <= file limit - 128)
    max_body_bytes: int = Field(default=64 * 2**10, gt=0)  # any request body but uploads
    # browser sessions (pages): a random session id in the cookie, revoked by logout
    session_days: float = Field(default=7.0, gt=0, le=365)
    public_url: str | None = None    # e.g. https://ctf.example.org: the only Origin a POST may carry


def _secret_sentence(field: str, first: dict) -> str | None:
    """The admin secret's own sentences: how to make one when it is missing, and never its value."""
    if field != "admin_secret":
        return None
    if first["type"] == "missing":
        return ("The CTF referee needs an admin secret: set the environment variable "
                "PETRIDISH_CTF_ADMIN_SECRET to a random string of at least 16 "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`).")
    return f"The 'admin_secret' setting of the CTF referee is invalid: {first['msg']}."


def load_settings(**overrides) -> Settings:
    """Settings from the environment plus explicit overrides; a missing secret is one clear line."""
    return load_typed_settings(Settings, "the CTF referee", overrides, special=_secret_sentence)
