"""The web UI through Flask's test client, on a real archive (blob store + catalog + search index)."""

from __future__ import annotations

import re
from datetime import date

from tests.fixtures.web import form_token, ids, login
from tests.fixtures.webdata import message
from web.jobs import wait
from web.throttle import FREE_FAILURES


def test_every_route_needs_login(app):
    folder_id, pid = ids(app, "alpha")
    client = app.test_client()
    paths = ["/", "/a/alpha", f"/f/{folder_id}", f"/m/{pid}", f"/m/{pid}/raw", f"/m/{pid}/part/0", f"/m/{pid}/html",
             "/search?q=zebra1", "/b/" + "0" * 64, "/runs", f"/restore?pid={pid}",
             "/restore?account=alpha&folder=INBOX", "/jobs/abc", "/prefs", "/accounts/add", "/oauth/alpha",
             "/oauth/alpha/authorize", "/oauth/callback?state=x&code=y"]  # fmt: skip
    for path in paths:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    token = form_token(client)  # a valid token of this (anonymous) session: login is still required
    for path, form in [("/backup/alpha", {}), ("/restore", {"pid": str(pid), "target": "gamma"}),
                       ("/prefs", {"tz": "UTC"}), ("/accounts/add/find", {"email": "a@example.test"}),
                       ("/accounts/add/save", {"host": "example.test"}), ("/oauth/alpha/connect", {}),
                       ("/oauth/alpha/cancel", {})]:  # fmt: skip
        response = client.post(path, data={"csrf_token": token, **form})
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path
    assert app.extensions["archiver_jobs"].of_user("") == []  # nothing started
    assert client.get(f"/m/{pid}/cid/0").status_code == 404  # inline images need a signed token instead
    own_auth = {"static", "auth.login", "auth.logout", "metrics.metrics"}  # metrics: token/loopback, tested there
    assert {rule.endpoint for rule in app.url_map.iter_rules()} - own_auth == {
        "browse.accounts", "browse.folders", "browse.folder", "browse.message", "browse.raw", "browse.part",
        "browse.html", "browse.cid", "search.search", "search.blob", "runs.history", "runs.backup_now",
        "restore.form", "restore.start", "jobs.job", "prefs.prefs", "sessions.sessions_page", "sessions.end",
        "accounts_add.start", "accounts_add.find", "accounts_add.save",
        "oauth.page", "oauth.connect", "oauth.cancel", "oauth.authorize", "oauth.callback",
    }  # fmt: skip


def test_login_cookie_flags_and_wrong_password(app):
    client = app.test_client()
    assert login(client, "bob", "nope").status_code == 401
    assert login(client, "nobody", "nope").status_code == 401
    response = login(client, "bob", "bob-pass")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/").status_code == 200
    assert "Secure" not in cookie  # plain HTTP here
    tls = app.test_client()
    token = form_token(tls, "https://localhost/login")
    response = tls.post(
        "https://localhost/login", data={"username": "bob", "password": "bob-pass", "csrf_token": token}
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_login_is_rate_limited(app):
    client = app.test_client()
    for _ in range(FREE_FAILURES["user"]):
        assert login(client, "bob", "wrong").status_code == 401
    blocked = login(client, "bob", "bob-pass")
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.get_data(as_text=True)
    assert login(client, "root", "root-pass").status_code == 302  # another user from the same address is fine


def test_csrf_rejected_without_or_with_wrong_token(app, root):
    fresh = app.test_client()
    assert login(fresh, "bob", "bob-pass", token="").status_code == 400
    assert root.post("/backup/alpha").status_code == 400
    assert root.post("/backup/alpha", data={"csrf_token": "forged"}).status_code == 400
    assert root.post("/logout").status_code == 400
    assert root.get("/").status_code == 200  # still logged in
    assert root.post("/logout", data={"csrf_token": form_token(root, "/")}).status_code == 302
    assert root.get("/").status_code == 302


def test_per_user_isolation(app, bob):
    beta_folder, beta_pid = ids(app, "beta")
    home = bob.get("/").get_data(as_text=True)
    assert "alpha" in home and "beta" not in home
    for path in ["/a/beta", f"/f/{beta_folder}", f"/m/{beta_pid}", f"/m/{beta_pid}/raw", f"/m/{beta_pid}/part/0",
                 f"/m/{beta_pid}/html", f"/m/{beta_pid}/cid/0", "/search?q=quokka&account=beta"]:  # fmt: skip
        assert bob.get(path).status_code == 404, path
    assert bob.post("/backup/beta", data={"csrf_token": form_token(bob, "/")}).status_code == 404
    hits = bob.get("/search?q=quokka").get_data(as_text=True)
    assert "beta secret plans" not in hits and "0 message(s)" in hits
    beta_blob = app.extensions["archiver_archive"].catalog.web_placement(beta_pid)["blob_id"]
    assert bob.get(f"/b/{beta_blob}").status_code == 404
    assert "beta" not in bob.get("/runs").get_data(as_text=True)


def test_unknown_ids_and_traversal(root):
    for path in ["/m/999999", "/f/999999", "/a/nosuch", "/m/1/part/99", "/b/" + "f" * 64, "/b/../../etc/passwd",
                 "/a/..%2f..%2fetc%2fpasswd", "/m/..%2f1", "/m/-1", "/b/" + "A" * 64, "/static/..%2f__init__.py",
                 "/f/1?before=x", "/nowhere"]:  # fmt: skip
        assert root.get(path).status_code in (404, 400), path


def test_folder_pages_keyset_newest_first(app, root):
    folder_id, _ = ids(app, "alpha")
    seen: list[str] = []
    url = f"/f/{folder_id}"
    pages = 0
    while url:
        page = root.get(url).get_data(as_text=True)
        seen += re.findall(r"alpha message (\d+)<", page)
        nxt = re.search(r'href="([^"]+)" rel="next"', page)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
        pages += 1
    assert pages == 3
    assert [int(n) for n in seen] == list(range(119, -1, -1))


def test_folder_as_of_a_date(app, root):
    folder_id, _ = ids(app, "alpha")
    assert "alpha message 119<" in root.get(f"/f/{folder_id}?as_of={date.today().isoformat()}").get_data(as_text=True)
    empty = root.get(f"/f/{folder_id}?as_of=2000-01-01").get_data(as_text=True)
    assert "held no messages" in empty
    assert root.get(f"/f/{folder_id}?as_of=yesterday").status_code == 400


def test_folder_tree_and_accounts(root):
    home = root.get("/").get_data(as_text=True)
    assert "alpha" in home and "beta" in home and "Back up now" in home
    tree = root.get("/a/alpha").get_data(as_text=True)
    assert "INBOX" in tree and "Hostile" in tree


def test_message_view_and_raw_download(app, root):
    _, pid = ids(app, "alpha")
    page = root.get(f"/m/{pid}").get_data(as_text=True)
    assert "alpha message 119" in page and "zebra119" in page
    raw = root.get(f"/m/{pid}/raw")
    assert raw.data == message("alpha message 119", "body zebra119", n=119)
    assert raw.headers["Content-Disposition"].startswith("attachment;")
    assert raw.headers["X-Content-Type-Options"] == "nosniff"


def test_hostile_html_is_sanitised_sandboxed_and_under_csp(app, root):
    _, pid = ids(app, "alpha", "Lists/Hostile")
    page = root.get(f"/m/{pid}").get_data(as_text=True)
    assert re.search(r'<iframe[^>]*sandbox=""', page)
    assert "<script" not in page.lower()
    body = root.get(f"/m/{pid}/html")
    csp = body.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "form-action 'none'" in csp
    img_sources = csp.split("img-src")[1].split(";")[0].split()
    assert "http:" not in img_sources and "https:" not in img_sources and "*" not in img_sources
    html = body.get_data(as_text=True).lower()
    for bad in ("<script", "onerror", "onload", "javascript:", "<form", "<iframe", "<object", "http-equiv",
                "<base", "<link", "expression(", "http://127.0.0.1:9/img-remote"):  # fmt: skip
        assert bad not in html, bad
    assert f"/m/{pid}/cid/" in html  # cid: image rewritten to the archive
    cid_url = re.search(rf'src="(/m/{pid}/cid/(\d+)\?t=([^"]+))"', html)
    image = app.test_client().get(cid_url.group(1).replace("&amp;", "&"))  # no session: the iframe sends none
    assert image.status_code == 200 and image.data.startswith(b"\x89PNG")
    assert image.headers["Content-Type"] == "image/png"
    index_, token = int(cid_url.group(2)), cid_url.group(3)
    expired = f"/m/{pid}/cid/{index_}?t=1.{token.split('.')[1]}"
    forgeries = (f"/m/{pid}/cid/{index_ - 1}?t={token}", f"/m/{pid + 1}/cid/{index_}?t={token}", expired,
                 f"/m/{pid}/cid/{index_}?t=9999999999.00")  # fmt: skip
    for forged in forgeries:
        assert app.test_client().get(forged).status_code == 404, forged
    remote = root.get(f"/m/{pid}/html?remote=1")
    assert "http:" in remote.headers["Content-Security-Policy"].split("img-src")[1].split(";")[0].split()
    assert "http://127.0.0.1:9/img-remote" in remote.get_data(as_text=True)


def test_attachment_download_is_safe(app, root):
    _, pid = ids(app, "alpha", "Lists/Hostile")
    page = root.get(f"/m/{pid}").get_data(as_text=True)
    link = re.search(rf'href="(/m/{pid}/part/\d+)" download>[^<]*evil', page).group(1)
    response = root.get(link)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''" in disposition
    assert "/" not in disposition.split('filename="')[1].split('"')[0]
    assert b"<script>" in response.data  # the bytes are intact, just never rendered


def test_search_page_hits_and_filters(app, root):
    page = root.get("/search?q=zebra7").get_data(as_text=True)
    assert "alpha message 7<" in page and "<mark>" in page
    blob = re.search(r'href="/b/([0-9a-f]{64})"', page).group(1)
    redirect = root.get(f"/b/{blob}")
    assert redirect.status_code == 302 and redirect.headers["Location"].startswith("/m/")
    assert "0 message(s)" in root.get("/search?q=zebra7&folder=Lists/Hostile").get_data(as_text=True)
    assert root.get("/search?q=x&after=notadate").status_code == 400
    bad = root.get('/search?q="unclosed').get_data(as_text=True)
    assert 'class="error"' in bad or "message(s)" in bad


def test_pages_never_show_account_passwords_and_carry_security_headers(app, root):
    folder_id, pid = ids(app, "alpha")
    for path in ["/", "/a/alpha", f"/f/{folder_id}", f"/m/{pid}", "/runs", "/search?q=zebra1"]:
        response = root.get(path)
        text = response.get_data(as_text=True)
        assert "secret-alpha-pw" not in text and "secret-beta-pw" not in text
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_back_up_now_runs_in_background_and_shows_its_result(app, root, bob):
    response = root.post("/backup/alpha", data={"csrf_token": form_token(root, "/")})
    assert response.status_code == 302 and response.headers["Location"].startswith("/jobs/")
    job_url = response.headers["Location"]
    job = app.extensions["archiver_jobs"].get(job_url.rsplit("/", 1)[1])
    wait(job, 30)
    assert not job.running and job.error is None
    page = root.get(job_url).get_data(as_text=True)
    assert "Backup of alpha" in page and f"run {job.result.run_id}" in page and 'http-equiv="refresh"' not in page
    runs = root.get("/runs").get_data(as_text=True)
    assert "alpha" in runs and job_url in runs
    catalog = app.extensions["archiver_archive"].catalog
    assert len(catalog.web_runs([catalog.account_id("alpha")])) == 3
    assert bob.get(job_url).status_code == 404  # a job is its starter's alone
    assert job_url not in bob.get("/runs").get_data(as_text=True)
