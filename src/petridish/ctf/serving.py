"""The referee's HTTP front: what stands between a hostile client and the app.

- ``Hardening`` (pure ASGI middleware, one layer): security headers on every response
  (Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, Referrer-Policy, and
  Strict-Transport-Security over HTTPS); an Origin check on every POST/PUT/PATCH/DELETE; a body
  cap per route, checked on the declared Content-Length before anything is read and again as
  the body streams; and one deadline for the whole body (slow-body clients get a 408).
- ``ConnectionGuard`` (a uvicorn protocol mixin): a request's headers must arrive within
  ``header_timeout_s`` of the connection opening (or of the previous response), and at most
  ``max_connections`` connections are open (never more than the file limit allows, less what
  the database needs and one accept burst); when full,
  the oldest connection still waiting for its headers is closed, so slow-header clients
  cannot lock a normal client out.
- ``serve``: uvicorn with the above, keep-alive timeout, proxy headers from trusted addresses,
  and "Too many open files" logged once instead of once per accept.

For a public deployment, run the referee behind a reverse proxy (nginx, Caddy) that
terminates TLS and buffers request bodies; see SECURITY.md.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource

from fastapi import HTTPException

log = logging.getLogger("petridish.ctf")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ENVELOPE = 64 * 2**10          # multipart boundaries and fields around an uploaded file
FD_RESERVE = 128               # file descriptors kept for the database, models and scorers
BACKLOG = 64                   # listen queue; asyncio accepts up to this many sockets at once
CSP_PAGES = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
             "frame-ancestors 'none'; base-uri 'none'")
CSP_DOCS = ("default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")


def _headers(csp: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


HEADERS, DOCS_HEADERS = _headers(CSP_PAGES), _headers(CSP_DOCS)
HSTS = (b"strict-transport-security", b"max-age=31536000")


class Hardening:
    def __init__(self, app, settings):
        self.app, self.settings = app, settings
        self.public_origin = _origin_of(settings.public_url) if settings.public_url else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = DOCS_HEADERS if scope["path"] in ("/docs", "/redoc") else HEADERS
        if scope.get("scheme") == "https":
            extra = [*extra, HSTS]

        async def send_hardened(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        if scope["method"] in UNSAFE:
            refusal = self._refusal(scope)
            if refusal is not None:
                return await _json(send_hardened, *refusal)
            receive = self._guarded(scope, receive)
        await self.app(scope, receive, send_hardened)

    def body_cap(self, path: str) -> int:
        st = self.settings
        if path.startswith("/api/tasks/") and path.endswith("/submissions"):
            return st.max_model_bytes + ENVELOPE
        if path == "/api/admin/tasks":
            return st.max_arrays_bytes + ENVELOPE
        return st.max_body_bytes

    def _refusal(self, scope) -> tuple[int, str] | None:
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin is not None:
            own = self.public_origin or f"{scope.get('scheme', 'http')}://{headers.get(b'host', b'').decode('latin-1')}"
            if origin.decode("latin-1").lower().rstrip("/") != own.lower():
                return 403, (f"A {scope['method']} request must come from this referee's own pages "
                             f"(Origin {own}). Got Origin {origin.decode('latin-1')[:100]!r}.")
        declared = headers.get(b"content-length")
        cap = self.body_cap(scope["path"])
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                return 400, f"The Content-Length header must be a byte count. Got {declared[:40]!r}."
            if int(declared) > cap:
                return 413, (f"The body of {scope['method']} {scope['path'][:100]} must be at most {cap} "
                             f"bytes. Got a declared Content-Length of {int(declared)}.")
        return None

    def _guarded(self, scope, receive):
        """receive() under the body cap and the whole-body deadline (both raise HTTPException)."""
        cap, timeout = self.body_cap(scope["path"]), self.settings.body_timeout_s
        loop = asyncio.get_running_loop()
        deadline, got, done = loop.time() + timeout, 0, False

        async def guarded():
            nonlocal got, done
            if done:              # the body is in: later receives only listen for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"The request body must arrive within {timeout:g} s. "
                                         f"Got {got} bytes by then; send it faster or use a proxy "
                                         "that buffers uploads.") from None
            if message["type"] == "http.request":
                got += len(message.get("body", b""))
                if got > cap:
                    raise HTTPException(413, f"The body of {scope['method']} {scope['path'][:100]} must "
                                             f"be at most {cap} bytes. Got more.")
                done = not message.get("more_body", False)
            return message
        return guarded


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}".lower()


async def _json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class ConnectionGuard:
    """Header deadlines and the connection cap, shared by every connection of one server."""

    def __init__(self, max_connections: int, header_timeout_s: float):
        self.max_connections, self.header_timeout = max_connections, header_timeout_s
        self.waiting: dict = {}     # protocol -> header deadline; insertion order = deadline order
        self._sweeping = False

    def admit(self, proto) -> None:
        self.wait(proto)
        if len(proto.connections) > self.max_connections:
            victim = next((p for p in self.waiting if p is not proto), proto)
            self.drop(victim)
        if not self._sweeping:
            self._sweeping = True
            proto.loop.call_later(0.5, self._sweep, proto.loop)

    def wait(self, proto) -> None:
        """proto now waits for a request's headers (new connection, or after a response)."""
        self.waiting.pop(proto, None)
        self.waiting[proto] = proto.loop.time() + self.header_timeout

    def progress(self, proto) -> None:
        cycle = proto.cycle
        if cycle is not None and not cycle.response_complete:
            self.waiting.pop(proto, None)

    def forget(self, proto) -> None:
        self.waiting.pop(proto, None)

    def drop(self, proto) -> None:
        self.waiting.pop(proto, None)
        if proto.transport is not None and not proto.transport.is_closing():
            proto.transport.close()

    def _sweep(self, loop) -> None:
        now = loop.time()
        for proto, deadline in list(self.waiting.items()):
            if deadline > now:
                break
            self.drop(proto)
        loop.call_later(0.5, self._sweep, loop)


def guarded_protocol(guard: ConnectionGuard):
    """uvicorn's HTTP protocol class (httptools, else h11) with the guard's hooks."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Protocol
    except ImportError:         # httptools is a dependency; h11 keeps a bare install working
        from uvicorn.protocols.http.h11_impl import H11Protocol as Protocol

    class GuardedProtocol(Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            guard.admit(self)

        def data_received(self, data):
            super().data_received(data)
            guard.progress(self)

        def on_response_complete(self):
            super().on_response_complete()
            if self.cycle is None or self.cycle.response_complete:
                guard.wait(self)

        def connection_lost(self, exc):
            guard.forget(self)
            super().connection_lost(exc)

    return GuardedProtocol


def connection_cap(requested: int) -> int:
    """requested, but below the process's file limit (raised to its hard limit first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(8, min(requested, soft - FD_RESERVE - BACKLOG))


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log 'Too many open files' (and other out-of-resource accept errors) once, not per accept."""
    seen: set[int] = set()

    def handler(loop, context):
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            if exc.errno not in seen:
                seen.add(exc.errno)
                log.error("accepting connections failed: %s (logged once; lower --max-connections "
                          "or raise the file limit)", exc)
            return
        loop.default_exception_handler(context)
    loop.set_exception_handler(handler)


def serve(app, settings, *, host: str, port: int, log_level: str = "info",
          forwarded_allow_ips: str | None = None) -> None:
    """Run the app under uvicorn with the guard, the timeouts and the once-only accept error."""
    import uvicorn
    cap = connection_cap(settings.max_connections)
    guard = ConnectionGuard(cap, settings.header_timeout_s)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, http=guarded_protocol(guard),
                            timeout_keep_alive=settings.keep_alive_s, lifespan="on", backlog=BACKLOG,
                            proxy_headers=forwarded_allow_ips is not None,
                            forwarded_allow_ips=forwarded_allow_ips, server_header=False)
    server = uvicorn.Server(config)

    async def main():
        quiet_accept_errors(asyncio.get_running_loop())
        await server.serve()
    asyncio.run(main())
