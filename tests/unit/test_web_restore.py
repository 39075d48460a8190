"""Restore, jobs, time zone and error pages through Flask's test client (the Dovecot restore is in tests/browser).

The restore target here is an IMAP account on a closed loopback port, so a
started restore really runs the engine and really fails to connect: the job page
must say so.  Account ``gamma`` is visible to root and carol, not to bob.
"""

from __future__ import annotations

import re
from datetime import date

from tests.fixtures.web import form_token, ids, login
from web.jobs import wait


def carol_client(app):
    client = app.test_client()
    assert login(client, "carol", "carol-pass").status_code == 302
    return client


def start(client, **form) -> str:
    response = client.post("/restore", data={"csrf_token": form_token(client, "/"), **form})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith("/jobs/")
    return response.headers["Location"]


def finished(app, job_url: str):
    job = app.extensions["archiver_jobs"].get(job_url.rsplit("/", 1)[1])
    wait(job, 60)
    assert not job.running
    return job


def test_folder_and_message_pages_offer_restore(app, root):
    folder_id, pid = ids(app, "alpha")
    folder = root.get(f"/f/{folder_id}").get_data(as_text=True)
    assert f'name="pid" value="{pid}"' in folder and 'action="/restore"' in folder
    assert "/restore?account=alpha&amp;folder=INBOX" in folder
    past = root.get(f"/f/{folder_id}?as_of={date.today().isoformat()}").get_data(as_text=True)
    assert f"as_of={date.today().isoformat()}" in past and "Restore this folder as of" in past
    assert f"/restore?pid={pid}" in root.get(f"/m/{pid}").get_data(as_text=True)


def test_restore_form_shows_the_plan_and_only_imap_targets(app, root):
    page = root.get("/restore?account=alpha&folder=INBOX")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert re.search(r'<td class="num">120</td>', text)
    assert f"Restored/{date.today().isoformat()}/INBOX" in text
    options = re.findall(r"<option[^>]*>([^<]+)</option>", text)
    assert options == ["gamma"]  # alpha and beta are local archives: nothing to write into
    assert 'name="csrf_token"' in text and 'value="in_place"' in text
    _, pid = ids(app, "alpha")
    selection = root.get(f"/restore?pid={pid}&pid={pid - 1}").get_data(as_text=True)
    assert "2 selected messages" in selection and f'name="pid" value="{pid - 1}"' in selection


def test_restore_isolation_source_and_target(app, bob):
    _, beta_pid = ids(app, "beta")
    _, alpha_pid = ids(app, "alpha")
    token = form_token(bob, "/")
    for path in ["/restore?account=beta&folder=INBOX", f"/restore?pid={beta_pid}",
                 f"/restore?pid={alpha_pid}&pid={beta_pid}"]:  # fmt: skip
        assert bob.get(path).status_code == 404, path
    # bob may see alpha, but no IMAP account to write into: told so, and a POST naming gamma is refused
    assert "may not restore into any account" in bob.get("/restore?account=alpha&folder=INBOX").get_data(as_text=True)
    for form in [{"pid": str(alpha_pid), "target": "gamma"}, {"pid": str(beta_pid), "target": "alpha"},
                 {"account": "alpha", "folder": "INBOX", "target": "gamma"},
                 {"account": "beta", "folder": "INBOX", "target": "gamma"}]:  # fmt: skip
        assert bob.post("/restore", data={"csrf_token": token, **form}).status_code == 404, form
    assert app.extensions["archiver_jobs"].of_user("bob") == []


def test_restore_csrf_unknown_ids_and_traversal(app, root):
    form = {"account": "alpha", "folder": "INBOX", "target": "gamma"}
    assert root.post("/restore", data=form).status_code == 400
    assert root.post("/restore", data={**form, "csrf_token": "forged"}).status_code == 400
    for path in ["/restore?pid=999999", "/restore?pid=abc", "/restore?pid=-1", "/restore?account=nosuch&folder=INBOX",
                 "/restore?account=alpha&folder=Nope", "/restore?account=alpha&folder=../../etc/passwd",
                 "/restore?account=..%2f..%2fetc&folder=INBOX", "/jobs/nosuch", "/jobs/" + "x" * 100,
                 "/jobs/..%2f..%2fetc%2fpasswd"]:  # fmt: skip
        assert root.get(path).status_code == 404, path
    assert root.get("/restore?account=alpha").status_code == 400  # neither a folder nor messages
    assert root.get("/restore?account=alpha&folder=INBOX&as_of=yesterday").status_code == 400
    early = root.get("/restore?account=alpha&folder=INBOX&as_of=2000-01-01")
    assert early.status_code == 400 and "no backup run by" in early.get_data(as_text=True)
    token = form_token(root, "/")
    for prefix in ["../x", "a/../b", "x*", "a%b", "bad\\name", "tab\there"]:
        response = root.post("/restore", data={"csrf_token": token, **form, "prefix": prefix})
        assert response.status_code == 400, prefix
    assert root.post("/restore", data={"csrf_token": token, **form, "target": "nosuch"}).status_code == 404
    assert root.post("/restore", data={"csrf_token": token, **form, "target": "beta"}).status_code == 404  # local
    assert app.extensions["archiver_jobs"].of_user("root") == []


def test_restore_job_reports_a_refused_connection(app, root):
    job_url = start(root, account="alpha", folder="INBOX", target="gamma", mode="prefix", prefix="Back/Here")
    job = finished(app, job_url)
    assert job.error is None and not job.result.ok
    page = root.get(job_url).get_data(as_text=True)
    assert "Finished with problems" in page and "127.0.0.1:9" in page
    assert "secret-gamma-pw" not in page
    assert "Restore of alpha: INBOX into gamma" in page
    assert job_url in root.get("/runs").get_data(as_text=True)


def test_running_job_page_refreshes_itself(app, root):
    from web.jobs import Job, now_iso

    registry = app.extensions["archiver_jobs"]
    job = Job("fixedid", "restore", "root", "alpha", "Restore of something", now_iso(), total_messages=10)
    registry._jobs[job.id] = job  # a job that has not finished (no thread needed to show the page)
    page = root.get("/jobs/fixedid").get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="2">' in page and "0 of 10 messages" in page
    carol = carol_client(app)
    assert carol.get("/jobs/fixedid").status_code == 404


def test_carol_restores_a_selection_as_a_dry_run(app):
    carol = carol_client(app)
    _, pid = ids(app, "alpha")
    job_url = start(carol, pid=str(pid), target="gamma", mode="in_place", dry_run="1")
    job = finished(app, job_url)
    assert job.details["dry_run"] is True
    assert "(dry run)" in carol.get(job_url).get_data(as_text=True)


def test_time_zone_preference_changes_dates(app, root):
    folder_id, _ = ids(app, "alpha")
    cursor = "?before=2024-01-01T00:02:00%2B00:00|999999"  # add_messages puts message 0 at 2024-01-01 00:01 UTC
    assert root.post("/prefs", data={"tz": "Asia/Tokyo"}).status_code == 400  # no token
    token = form_token(root, "/prefs")
    assert root.post("/prefs", data={"csrf_token": token, "tz": "Mars/Olympus"}).status_code == 400
    assert root.post("/prefs", data={"csrf_token": token, "tz": "Asia/Tokyo"}).status_code == 302
    page = root.get(f"/f/{folder_id}{cursor}").get_data(as_text=True)
    assert "2024-01-01 09:01 JST" in page and "Times: Asia/Tokyo" in page
    us = root.get(f"/f/{folder_id}{cursor}", headers={"Accept-Language": "en-US"})
    assert "Jan 1, 2024, 9:01 AM JST" in us.get_data(as_text=True)


def test_error_pages_say_what_to_do(root):
    missing = root.get("/m/999999")
    assert missing.status_code == 404
    text = missing.get_data(as_text=True)
    assert "nothing you may see" in text and 'href="/"' in text and "Traceback" not in text
    bad = root.post("/backup/alpha").get_data(as_text=True)
    assert "reload the page and try again" in bad


def test_gone_folder_is_listed_with_its_date_and_can_be_restored(app, root):
    catalog = app.extensions["archiver_archive"].catalog
    account_id = catalog.account_id("alpha")
    run_id = catalog.start_run(account_id)
    catalog.mark_folders_gone(account_id, ["Lists/Hostile"], run_id)
    catalog.finish_run(run_id, "ok", 1, 0, 0)
    tree = root.get("/a/alpha").get_data(as_text=True)
    gone = re.search(r'<li[^>]*class="[^"]*gone[^"]*"[^>]*>(.*?)</li>', tree, re.S)
    assert gone and "Hostile" in gone.group(1) and "gone from the server since" in gone.group(1)
    assert re.search(r"since \d{4}-\d{2}-\d{2} \d{2}:\d{2}", gone.group(1))  # a date, in the reader's zone
    folder_id, _ = ids(app, "alpha", "Lists/Hostile")
    assert "gone from the server since" in root.get(f"/f/{folder_id}").get_data(as_text=True)
    plan = root.get("/restore?account=alpha&folder=Lists/Hostile").get_data(as_text=True)
    assert "Restored/" in plan and "Lists/Hostile" in plan and re.search(r'<td class="num">1</td>', plan)


def test_one_restore_per_target_and_a_few_jobs_per_user(app, root):
    from web.jobs import Job, now_iso

    registry = app.extensions["archiver_jobs"]
    busy = Job("busy1", "restore", "carol", "alpha", "Restore", now_iso(), details={"target": "gamma"})
    registry._jobs[busy.id] = busy  # carol's restore into gamma has not finished
    form = {"account": "alpha", "folder": "INBOX", "target": "gamma"}
    token = form_token(root, "/")
    clash = root.post("/restore", data={"csrf_token": token, **form})
    assert clash.status_code == 409 and "already running" in clash.get_data(as_text=True)
    dry = start(root, **form, dry_run="1")  # a dry run writes nothing: allowed alongside
    finished(app, dry)
    del registry._jobs["busy1"]
    for n in range(3):
        registry._jobs[f"mine{n}"] = Job(f"mine{n}", "backup", "root", "alpha", "Backup", now_iso())
    assert root.post("/restore", data={"csrf_token": token, **form}).status_code == 429


def test_job_registry_records_failures_and_keeps_a_bounded_history():
    from web.jobs import KEEP_JOBS, Job, JobRegistry, now_iso

    registry = JobRegistry()

    def boom(job):
        raise ValueError("the target refused us")

    failed = registry.start(Job("f", "restore", "u", "alpha", "Restore", now_iso()), boom)
    wait(failed, 10)
    assert failed.error == "the target refused us" and failed.result is None and failed.finished_at
    for n in range(KEEP_JOBS + 20):
        wait(registry.start(Job(f"j{n}", "backup", "u", "alpha", "Backup", now_iso()), lambda job: job.id), 10)
    kept = registry.of_user("u", limit=10_000)
    assert len(kept) <= KEEP_JOBS and registry.get(f"j{KEEP_JOBS + 19}") is not None
    assert registry.active() == []


def test_wrong_method_keeps_the_allow_header(root):
    response = root.get("/backup/alpha")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert "does not take that kind of request" in response.get_data(as_text=True)
