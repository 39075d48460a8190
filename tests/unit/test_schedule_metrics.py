"""``/metrics`` through Flask's test client: the figures from the catalog, and who may scrape."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from archiver.times import utc_now

TOKEN = "scrape-token-31337"


@pytest.fixture
def open_app(make_metrics_app: Callable[[str], Flask]) -> Iterator[Flask]:
    app = make_metrics_app("")
    yield app
    app.extensions["archiver_archive"].close()


def sample(text: str, name: str, **labels: str) -> float | None:
    label = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}{{{re.escape(label)}}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_metrics_figures_from_the_catalog(open_app: Flask) -> None:
    response = open_app.test_client().get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert sample(text, "archiver_account_messages", account="alpha") == 7
    assert (sample(text, "archiver_account_bytes", account="alpha") or 0) > 0
    assert sample(text, "archiver_account_last_run_ok", account="alpha") == 1
    assert sample(text, "archiver_account_last_run_ok", account="beta") == 0
    assert sample(text, "archiver_run_errors_total", account="beta") == 1
    assert sample(text, "archiver_runs_total", account="beta", status="failed") == 1
    assert sample(text, "archiver_messages_archived_total", account="alpha") == 7
    success = sample(text, "archiver_account_last_success_timestamp_seconds", account="alpha")
    assert success is not None and abs(success - utc_now().timestamp()) < 3600
    assert sample(text, "archiver_account_last_success_timestamp_seconds", account="beta") is None
    assert sample(text, "archiver_account_stale", account="alpha") == 0
    assert sample(text, "archiver_account_stale", account="beta") == 1
    assert sample(text, "archiver_account_failing", account="beta") == 1
    assert (sample(text, "archiver_account_next_run_timestamp_seconds", account="alpha") or 0) > utc_now().timestamp()
    assert re.search(r"^archiver_archive_blobs 7\.0$", text, re.MULTILINE)


def test_without_token_only_loopback_clients(open_app: Flask) -> None:
    client = open_app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 403
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
    assert proxied.status_code == 403  # a local reverse proxy does not make the world local
    assert client.get("/runs").status_code in (302, 401)  # the rest of the UI still wants a login


def test_with_token_everyone_needs_it(make_metrics_app: Callable[[str], Flask]) -> None:
    app = make_metrics_app(f'[metrics]\ntoken = "{TOKEN}"\n')
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        remote = {"REMOTE_ADDR": "192.0.2.7"}
        good = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, environ_base=remote)
        assert good.status_code == 200 and b"archiver_account_messages" in good.data
    finally:
        app.extensions["archiver_archive"].close()


def test_disabled_metrics_are_not_found(make_metrics_app: Callable[[str], Flask]) -> None:
    app = make_metrics_app("[metrics]\nenabled = false\n")
    try:
        assert app.test_client().get("/metrics").status_code == 404
    finally:
        app.extensions["archiver_archive"].close()
