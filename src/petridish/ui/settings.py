"""Typed settings of the dashboard (pydantic-settings, environment prefix ``PETRIDISH_UI_``).

Every setting has a safe default: loopback only, the store read-only, 50 runs a page.
"""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from petridish.web import load_typed_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PETRIDISH_UI_", extra="ignore")

    store: str | None = None                      # SQLAlchemy URL or directory; None: $PETRIDISH_STORE or ./petridish-runs
    host: str = "127.0.0.1"                       # loopback by default: the dashboard has no login
    port: int = Field(default=8765, ge=1, le=65535)
    page_size: int = Field(default=50, ge=1, le=500)        # runs per page of the list
    poll_s: float = Field(default=2.0, gt=0, le=60)          # live progress: seconds between polls
    figure_cache: int = Field(default=32, ge=0, le=1024)     # rendered PNG figures kept in memory
    max_series: int = Field(default=12, ge=1, le=100)        # lines per chart (the first ones, in sweep order)


def load_settings(**overrides) -> Settings:
    """Settings from the environment plus explicit overrides (None ones ignored); one clear line on error."""
    return load_typed_settings(Settings, "the dashboard", overrides)
