"""Hostile request input: ids, redirect targets and attachment names (issue 12, items 5, 8, 9)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.conftest import first_message, log_in
from web.ids import MAX_ID, parse_id


@pytest.fixture
def root(web_app):
    client = web_app.test_client()
    assert log_in(client, "root", "root-pass").status_code == 302
    return client


def test_oversized_and_odd_ids_are_404_not_500(web_app, root):
    pid = first_message(web_app)
    huge = "99999999999999999999"
    for path in [f"/m/{huge}", f"/m/{huge}/raw", f"/m/{pid}/part/{huge}", f"/m/{huge}/html", f"/f/{huge}",
                 f"/m/{MAX_ID + 1}", f"/m/{huge}/cid/0?t=1.x", f"/m/{pid}/cid/0?t=².x"]:  # fmt: skip
        assert root.get(path).status_code == 404, path
    assert root.get(f"/m/{MAX_ID}").status_code == 404  # the largest id SQLite holds: fine, just absent
    assert root.get(f"/m/{pid}").status_code == 200
    folder = web_app.extensions["archiver_archive"].catalog.web_folders(1)[0]["id"]
    for cursor in (f"x|{huge}", "x|²"):
        assert root.get(f"/f/{folder}", query_string={"before": cursor}).status_code == 400
    assert root.get("/search", query_string={"q": "hello", "page": "²"}).status_code == 200
    assert root.get("/restore", query_string={"pid": huge}).status_code == 404
    assert root.get("/restore", query_string={"pid": "²"}).status_code == 404


@given(st.text(max_size=30))
@settings(max_examples=300)
def test_parse_id_never_raises(text):
    value = parse_id(text)
    assert value is None or (0 <= value <= MAX_ID and str(value) == text.lstrip("0").rjust(1, "0"))
