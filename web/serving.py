"""How waitress serves the app: which peer's forwarding headers are believed, and what the app may know of it.

Without ``[web] trusted_proxy`` no forwarding header is believed, but waitress
is told to leave them in the request (``clear_untrusted_proxy_headers=False``)
instead of silently deleting them: their presence is what tells
``/metrics`` that a reverse proxy stands between it and the client.  With
``trusted_proxy`` waitress takes the client address from that peer's
``X-Forwarded-For`` (one hop) and the scheme from ``X-Forwarded-Proto``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import waitress
from waitress.server import BaseWSGIServer, MultiSocketServer

from archiver.config import WebConfig

TRUSTED_PROXY_HEADERS = {"x-forwarded-for", "x-forwarded-proto"}


def waitress_options(web: WebConfig) -> dict[str, Any]:
    """Keyword arguments for ``waitress.serve`` / ``waitress.create_server``."""
    if web.trusted_proxy is None:
        return {"clear_untrusted_proxy_headers": False}
    return {
        "trusted_proxy": web.trusted_proxy,
        "trusted_proxy_count": 1,
        "trusted_proxy_headers": TRUSTED_PROXY_HEADERS,
        "clear_untrusted_proxy_headers": True,
    }


def create_server(app: Callable, web: WebConfig, listen: str, threads: int) -> BaseWSGIServer | MultiSocketServer:
    """A waitress server for ``app`` on ``listen`` (``HOST:PORT``), not yet running: ``archiver daemon``'s web UI.

    The daemon finds this through the ``archiver.web`` entry point; it calls ``run()`` in a
    thread and ``close()`` to stop.  Raises OSError when the address cannot be bound.
    """
    host, _, port = listen.rpartition(":")
    options = waitress_options(web)
    return waitress.create_server(
        app, host=host.strip("[]"), port=int(port), threads=threads, ident="archiver", **options
    )


def loopback_listen(listen: str) -> bool:
    """True when ``HOST:PORT`` listens on a loopback address only (``localhost``, 127.0.0.0/8, ``[::1]``)."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
