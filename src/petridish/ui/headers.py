"""Security headers on every response, and no method but GET/HEAD (the dashboard is read-only;
HEAD is answered as GET without the body).

The CSP allows only this server's own scripts, styles, images and fetches: no inline script,
no CDN, no frames. Pure ASGI, one layer.
"""
from __future__ import annotations

import json

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
           (b"cross-origin-resource-policy", b"same-origin")]
READ = frozenset({"GET", "HEAD"})


class SecureHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        head = scope["method"] == "HEAD"          # answered as GET without the body (the routes are GETs)
        if head:
            scope = dict(scope, method="GET")

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *HEADERS]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        if scope["method"] not in READ:
            body = json.dumps({"detail": f"The dashboard is read-only: {scope['method']} is not allowed "
                                         "(only GET and HEAD)."}).encode()
            await send_secured({"type": "http.response.start", "status": 405,
                                "headers": [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD"),
                                            (b"content-length", str(len(body)).encode())]})
            return await send_secured({"type": "http.response.body", "body": body})
        await self.app(scope, receive, send_secured)
