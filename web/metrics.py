"""``GET /metrics``: Prometheus metrics of the archive (see :mod:`archiver.metrics` for the names).

No login session here (Prometheus does not log in).  Who may scrape:

* with ``[metrics] token`` or ``token_file`` set: any client sending
  ``Authorization: Bearer <token>``, and nobody else;
* without a token: loopback clients only (127.0.0.0/8, ::1), and never a
  request carrying ``X-Forwarded-For`` / ``Forwarded`` (a reverse proxy on the
  same host would otherwise make every remote client look local);
* ``[metrics] enabled = false``: 404.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST

from archiver.catalog import Catalog
from archiver.config import MetricsConfig
from archiver.errors import SecretError
from archiver.logs import register_secret
from archiver.metrics import render_metrics
from archiver.secret_io import read_secret_file
from web import app_config
from web.auth import PUBLIC_ENDPOINTS

bp = Blueprint("metrics", __name__)
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
    if not address or request.headers.get("X-Forwarded-For") or request.headers.get("Forwarded"):
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
        return Response("metrics: only loopback clients, or set [metrics] token\n", 403)
    catalog = Catalog.open(Path(config.archive.path), readonly=True)
    try:
        body = render_metrics(config, catalog)
    finally:
        catalog.close()
    return Response(body, content_type=CONTENT_TYPE_LATEST)
