"""Hostile request input: ids, redirect targets and attachment names (issue 12, items 5, 8, 9)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.web import first_message, log_in
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


@pytest.mark.parametrize(
    "target",
    ["/%09/evil.example/x", "/%0a/evil.example", "/%0d%0a/evil.example", "//evil.example", "/\\evil.example",
     "/%5Cevil.example", "https://evil.example/", "javascript:alert(1)", "/%20/evil.example", "/%E2%80%8B/evil",
     "evil.example", "/%C2%A0/evil.example", "///evil.example"],
)  # fmt: skip
def test_login_never_redirects_off_site(web_app, target):
    response = log_in(web_app.test_client(), "bob", "bob-pass", next_path=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_login_follows_same_site_paths(web_app):
    pid = first_message(web_app)
    for target, location in [(f"/m/{pid}", f"/m/{pid}"), ("/search%3Fq%3Dx", "/search?q=x"), ("/%C3%A4", "/%C3%A4")]:
        response = log_in(web_app.test_client(), "bob", "bob-pass", next_path=target)
        assert response.headers["Location"] == location


@given(st.text(max_size=40))
@settings(max_examples=500)
def test_safe_next_only_yields_site_paths(target):
    from urllib.parse import urlsplit

    from web.auth import safe_next

    result = safe_next(target)
    if result is not None:
        browser_view = "".join(c for c in result if c not in "\t\n\r").replace("\\", "/")
        assert browser_view.startswith("/") and not browser_view.startswith("//")
        assert not urlsplit(browser_view).netloc


SPOOF = "invoice\u202efdp.exe"
NAMES = [SPOOF, "счёт-фактура №5.pdf", "請求書.pdf", "a\u200bb\x07c.txt", "../../etc/passwd", "  ..  ", 'q"uote;x.txt']


def _attachments_message(names: list[str]) -> bytes:
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@example.org", "b@example.org", "attachments"
    mail.set_content("see attached")
    for i, name in enumerate(names):
        mail.add_attachment(f"content {i}".encode(), maintype="application", subtype="octet-stream", filename=name)
    return mail.as_bytes()


def test_attachment_names_are_shown_escaped_and_downloadable(make_web_app):
    from urllib.parse import unquote

    app = make_web_app(messages=(_attachments_message(NAMES),))
    client = app.test_client()
    assert log_in(client, "root", "root-pass").status_code == 302
    catalog = app.extensions["archiver_archive"].catalog
    pid = max(r["id"] for r in catalog.web_folder_page(catalog.web_folders(1)[0]["id"], before=None, limit=9))
    page = client.get(f"/m/{pid}").get_data(as_text=True)
    assert "\u202e" not in page and "\u200b" not in page and "\x07" not in page
    assert "invoice⟨U+202E⟩fdp.exe" in page and "a⟨U+200B⟩b⟨U+0007⟩c.txt" in page
    assert "счёт-фактура №5.pdf" in page and "請求書.pdf" in page
    saved = []
    for index in range(1, 1 + len(NAMES)):
        response = client.get(f"/m/{pid}/part/{index}")
        assert response.status_code == 200, index
        assert response.data == f"content {index - 1}".encode()
        disposition = response.headers["Content-Disposition"]
        assert disposition.isascii() and disposition.startswith("attachment; filename=")
        saved.append(unquote(disposition.split("filename*=UTF-8''")[1], errors="strict"))
    assert saved == ["invoice_fdp.exe", "счёт-фактура №5.pdf", "請求書.pdf", "a_b_c.txt", "_.._etc_passwd",
                     "download", 'q"uote;x.txt']  # fmt: skip


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_any_attachment_name_gives_a_valid_header_and_visible_text(name):
    import unicodedata
    from urllib.parse import unquote

    from web.filenames import content_disposition, download_name, shown_name

    header = content_disposition(name)
    header.encode("latin-1")  # what WSGI requires of a header value; ASCII in fact
    assert header.isascii() and "\r" not in header and "\n" not in header
    saved = unquote(header.split("filename*=UTF-8''")[1], errors="strict")
    assert saved == download_name(name) and saved and "/" not in saved and "\\" not in saved
    hidden = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    assert not any(unicodedata.category(c) in hidden for c in shown_name(name) + saved)
