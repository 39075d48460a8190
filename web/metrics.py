"""``GET /metrics``: Prometheus metrics of the archive (see :mod:`archiver.daemon.metrics` for the names).

No login session here (Prometheus does not log in).  Who may scrape:

* with ``[metrics] token`` or ``token_file`` set: any client sending
  ``Authorization: Bearer <token>``, and nobody else;
* without a token: loopback clients only (127.0.0.0/8, ::1), and only when
  the app listens on a loopback address, no ``[web] trusted_proxy`` is set and
  the request carries no ``X-Forwarded-For`` / ``Forwarded`` (a reverse proxy
  on the same host would otherwise make every remote client look local; waitress
  keeps those headers visible for this, see :mod:`web.serving`).  A proxy that
  adds none of these headers cannot be told from a local client: give the
  token whenever a proxy is in front;
* ``[metrics] enabled = false``: 404.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from archiver.catalog import Catalog
from archiver.config import MetricsConfig
from archiver.daemon.metrics import render_metrics
from archiver.errors import SecretError
from archiver.logs import register_secret
from archiver.secret_io import read_secret_file
from web.auth import PUBLIC_ENDPOINTS
from web.context import app_config
from web.serving import loopback_listen

bp = Blueprint("metrics", __name__)
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP")
PUBLIC_ENDPOINTS.add("metrics.metrics")  # no session: the view checks its own token or loopback rule


def _token(settings: MetricsConfig) -> str | None:
    if settings.token:
        return settings.token
    if settings.token_file is not None:
        try:  # bounded and never blocking: a FIFO or /dev/zero must not hang or bloat a request
            token = read_secret_file(Path(settings.token_file), "[metrics] token_file").decode("utf-8").strip()
        except (SecretError, UnicodeDecodeError):
            abort(503)  # misconfigured: refuse rather than fall back to open
        register_secret(token)
        return token
    return None


def _local(address: str | None) -> bool:
    """May this request scrape without a token: a loopback client of a loopback-only, proxy-less app."""
    web = app_config().web
    if not loopback_listen(current_app.extensions["archiver_listen"]) or web.trusted_proxy is not None:
        return False
    if not address or any(request.headers.get(name) for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


@bp.route("/metrics")
def metrics() -> Any:
    config = app_config()
    settings = config.metrics
    if not settings.enabled:
        abort(404)
    token = _token(settings)
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response("metrics: bearer token required\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    elif not _local(request.remote_addr):
        return Response(
            "metrics: without [metrics] token only local clients of an app listening on loopback, "
            "with no reverse proxy, may scrape: set [metrics] token\n",
            403,
        )
    catalog = Catalog.open(Path(config.archive.path), readonly=True)
    try:
        body = render_metrics(config, catalog)
    finally:
        catalog.close()
    return Response(body, content_type=CONTENT_TYPE_LATEST)
