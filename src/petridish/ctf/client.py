"""A small HTTP client for the referee (used by `petridish ctf ...`); errors are PetridishError lines.

The token `register` returns is saved (mode 0600) in ~/.config/petridish/ctf-tokens.json, keyed by
server URL (override the folder with PETRIDISH_CTF_CONFIG_DIR), and read back by later commands;
--token or PETRIDISH_CTF_TOKEN take precedence.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from petridish.errors import PetridishError

DEFAULT_SERVER = "http://127.0.0.1:8000"


def server_url(server: str | None) -> str:
    url = (server or os.environ.get("PETRIDISH_CTF_SERVER") or DEFAULT_SERVER).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise PetridishError(f"The '--server' option must be an http:// or https:// URL. Got {url!r}.")
    return url


def _token_file() -> Path:
    base = os.environ.get("PETRIDISH_CTF_CONFIG_DIR") or Path.home() / ".config" / "petridish"
    return Path(base) / "ctf-tokens.json"


def save_token(server: str, token: str) -> Path:
    path = _token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[server] = token
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return path


def load_token(server: str, token: str | None) -> str:
    token = token or os.environ.get("PETRIDISH_CTF_TOKEN")
    if not token and _token_file().exists():
        token = json.loads(_token_file().read_text()).get(server)
    if not token:
        raise PetridishError(f"No API token for {server}: run `petridish ctf register NAME --server {server}` "
                             "first, or pass --token / set PETRIDISH_CTF_TOKEN.")
    return token


class Client:
    def __init__(self, server: str | None = None, *, token: str | None = None,
                 admin_secret: str | None = None, timeout: float = 60.0):
        self.server = server_url(server)
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if admin_secret:
            headers["X-Admin-Secret"] = admin_secret
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout, trust_env=False)

    def request(self, method: str, path: str, **kw):
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise PetridishError(f"Could not reach the referee at {self.server} ({type(exc).__name__}). "
                                 "Is `petridish ctf serve` running there?") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except Exception:
                detail = r.text[:200]
            raise PetridishError(f"The referee refused the request ({r.status_code}): {detail}")
        return r.json()

    def register(self, name: str, invitation: str | None = None) -> dict:
        body = {"name": name} if invitation is None else {"name": name, "invitation": invitation}
        return self.request("POST", "/api/competitors", json=body)

    def set_registration(self, is_open: bool) -> dict:
        return self.request("PUT", "/api/admin/registration", json={"open": is_open})

    def invite(self, count: int = 1, days: float = 14.0) -> dict:
        return self.request("POST", "/api/admin/invitations", json={"count": count, "days": days})

    def issue_token(self, name: str) -> dict:
        return self.request("POST", "/api/admin/competitors", json={"name": name})

    def submit(self, task: str, model_bytes: bytes) -> dict:
        return self.request("POST", f"/api/tasks/{task}/submissions",
                            files={"file": ("model.onnx", model_bytes, "application/octet-stream")})

    def submission(self, sid: int) -> dict:
        return self.request("GET", f"/api/submissions/{sid}")

    def submissions(self, task: str | None = None) -> list[dict]:
        return self.request("GET", "/api/submissions", params={"task": task} if task else None)

    def leaderboard(self, task: str, private: bool = False) -> dict:
        return self.request("GET", f"/api/tasks/{task}/leaderboard" + ("/private" if private else ""))

    def create_task(self, arrays_npz: bytes, **fields) -> dict:
        data = {k: str(v) for k, v in fields.items() if v is not None}
        return self.request("POST", "/api/admin/tasks", data=data,
                            files={"arrays": ("arrays.npz", arrays_npz, "application/octet-stream")})

    def update_task(self, task: str, **fields) -> dict:
        return self.request("PATCH", f"/api/admin/tasks/{task}",
                            json={k: v for k, v in fields.items() if v is not None})
