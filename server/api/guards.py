"""Request guards for a server that browsers can reach, often token-less on loopback.

* Trusted hosts, against DNS rebinding: a page on evil.example whose name is re-pointed at
  127.0.0.1 reaches this server as `Host: evil.example` and could read and submit jobs.
  Only loopback names (127.0.0.1, localhost, ::1) and those in `trusted_hosts` are
  answered, on any port; others get 400. Default `trusted_hosts`: the bound host when it
  is a loopback address; when bound to any other interface, every name (the names
  clients use are unknown: set `trusted_hosts`, and a token).
* Cross-site mutations, against request forgery: a form on another site can POST to
  `/api/jobs/{id}/cancel`, which needs no JSON body. Browsers mark such requests with
  `Origin` and `Sec-Fetch-Site`; a POST, PUT, PATCH or DELETE (or a websocket) whose
  Origin is not this server nor one of `cors_origins`, or that says `Sec-Fetch-Site:
  cross-site`, gets 403. Clients outside a browser (curl, the CLI, the UI's server-side
  API client) send neither header and pass.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server.settings import Settings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
ANY = "*"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def trusted_hosts(settings: Settings) -> frozenset[str] | None:
    """The Host names this server answers, lower case without port; None: any.

    Loopback names are always among them: a rebinding page cannot send them (a browser
    sends its own page's name), and the UI reaches the API through 127.0.0.1."""
    if settings.trusted_hosts is not None:
        names = {host_name(entry) for entry in settings.trusted_hosts}
    elif is_loopback(settings.host):
        names = {host_name(settings.host)}
    else:
        return None
    return None if ANY in names else frozenset({*LOOPBACK_NAMES, *names})


def is_loopback(host: str) -> bool:
    if host_name(host) == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_name(host)).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """`[::1]:8000` → `::1`, `Example.COM:80` → `example.com`, `::1` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class RequestGuard:
    """400 for an untrusted Host, 403 for a cross-site mutation; see the module docstring."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None, cors_origins: list[str]):
        self.app, self.hosts = app, hosts
        self.origins = frozenset(origin.rstrip("/") for origin in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope, Headers(scope=scope))
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refusal[1]})
        else:
            status, detail = refusal
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            if not host:
                return 400, "missing Host header"
            return 400, (
                f"Host {host!r} is not a trusted host of this server "
                "(see the trusted_hosts setting)"
            )
        if scope["type"] == "http" and scope["method"] not in _UNSAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and (ANY in self.origins or origin.rstrip("/") in self.origins):
            return None
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return 403, (
                f"cross-site request refused: Origin {origin!r} is not this server "
                "(allow it with the cors_origins setting)"
            )
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, "cross-site request refused (Sec-Fetch-Site: cross-site)"
        return None
