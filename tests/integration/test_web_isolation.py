"""Account isolation through the whole web UI, on an archive made by real backups from Dovecot.

Two mail accounts share one message (deduplicated into one blob: one search
document) and each holds a private one.  A web user per account, a user
whose ``accounts`` list is empty and one without the key at all request every
page, download, redirect and search of both accounts; nothing of an account
they may not see (its name, folders, subjects, bodies, attachment names,
counts) may appear in any status line, header or body.  The administrator's
view proves the same crawl does show all of it when it is allowed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from flask import Flask
from werkzeug.test import TestResponse

from archiver.backup import run_backup
from archiver.config import Config
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import MailUser, account_toml
from tests.fixtures.web import login
from tests.fixtures.webdata import PNG_1PX
from web import create_app
from web.jobs import wait

pytestmark = pytest.mark.integration

_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash
USERS = f"""
[[web.users]]
name = "alice"
password_hash = "{_hash("alice-pass")}"
accounts = ["acct-a"]
[[web.users]]
name = "bert"
password_hash = "{_hash("bert-pass")}"
accounts = ["acct-b"]
[[web.users]]
name = "nobody"
password_hash = "{_hash("nobody-pass")}"
accounts = []
[[web.users]]
name = "nokey"
password_hash = "{_hash("nokey-pass")}"
[[web.users]]
name = "root"
password_hash = "{_hash("root-pass")}"
admin = true
"""
SEES = {"alice": {"acct-a"}, "bert": {"acct-b"}, "nobody": set(), "nokey": set(), "root": {"acct-a", "acct-b"}}


def _mail(subject: str, body: str, n: int) -> bytes:
    return (
        f"From: Anna <anna@example.org>\r\nTo: team@example.org\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:0{n}:00 +0000\r\nMessage-ID: <isolation{n}@example.org>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def _bravo_mail() -> bytes:
    """The private message of acct-b: an HTML body with an inline image, and an attachment."""
    import base64

    png = base64.b64encode(PNG_1PX).decode()
    return (
        "From: Anna <anna@example.org>\r\nTo: team@example.org\r\nSubject: Bravo BRAVOSECRET plan\r\n"
        "Date: Mon, 01 Jan 2024 10:03:00 +0000\r\nMessage-ID: <isolation3@example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B1"\r\n\r\n'
        '--B1\r\nContent-Type: multipart/related; boundary="B2"\r\n\r\n'
        "--B2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<p>bravobody merger <img src="cid:logo@x"></p>\r\n'
        "--B2\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{png}\r\n--B2--\r\n"
        '--B1\r\nContent-Type: text/plain; name="bravo-attachment.txt"\r\n'
        'Content-Disposition: attachment; filename="bravo-attachment.txt"\r\n\r\nbravo attachment text\r\n--B1--\r\n'
    ).encode()


SHARED = _mail("Quarterly sharedword figures", "sharedword merger details", 1)
ALPHA = _mail("Alpha ALPHASECRET plan", "alphabody merger", 2)
BRAVO = _bravo_mail()
#: What only a viewer of the account may read anywhere (the account's name, folders, private mail).
PRIVATE = {
    "acct-a": ("acct-a", "Private-Merger", "ALPHASECRET", "alphabody"),
    "acct-b": ("acct-b", "Bravo-Hidden", "BRAVOSECRET", "bravobody", "bravo-attachment"),
}
SHARED_WORDS = ("sharedword", "Quarterly")
QUERIES = [
    "*", "merger", "sharedword", "ALPHASECRET", "BRAVOSECRET", "bravo-attachment", "folder:Private-Merger",
    "folder:Bravo-Hidden", "in:private*", "folder:acct-b/INBOX", "folder:acct-a/*", "account:acct-a",
    "account:acct-b", "account:acct-*", "is:flagged", "is:unread", "is:seen sharedword", "NOT folder:INBOX",
    "has:attachment", "filename:bravo*", "from:anna", "sharedword OR nothing", "folder:(",
]  # fmt: skip


@dataclass
class World:
    app: Flask
    config: Config
    folders: dict[str, list[tuple[int, str]]]  # account -> (folder id, name)
    pids: dict[str, list[int]]  # account -> placement ids
    blobs: dict[str, str]  # "shared" / "alpha" / "bravo" -> blob id
    usernames: dict[str, str]  # account -> its mail server login


@pytest.fixture(scope="module")
def world(dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("web-isolation")
    users = {}
    for account in ("acct-a", "acct-b"):
        user = MailUser(f"iso{secrets.token_hex(4)}", f"pw-{secrets.token_hex(6)}")
        dovecot.add_user(user.name, user.password)
        users[account] = user
    dovecot.append_many(users["acct-a"].name, "Private-Merger", [(SHARED, ("\\Flagged",), None)])
    dovecot.append_many(users["acct-a"].name, "INBOX", [(ALPHA, ("\\Seen",), None)])
    dovecot.append_many(users["acct-b"].name, "INBOX", [(SHARED, ("\\Seen",), None)])
    dovecot.append_many(users["acct-b"].name, "Bravo-Hidden", [(BRAVO, ("\\Seen",), None)])
    accounts = "".join(account_toml(dovecot, users[name], name=name) for name in users)
    config = parse_config(write_config(tmp, accounts + USERS))
    for name in users:
        assert run_backup(config, config.account(name)).status == "ok"
    app = create_app(config, testing=True)
    catalog = app.extensions["archiver_archive"].catalog
    folders: dict[str, list[tuple[int, str]]] = {}
    pids: dict[str, list[int]] = {}
    for name in users:
        rows = catalog.web_folders(catalog.account_id(name))
        folders[name] = [(row["id"], row["name"]) for row in rows]
        pids[name] = [r["id"] for fid, _ in folders[name] for r in catalog.web_folder_page(fid, before=None, limit=50)]
    store = app.extensions["archiver_archive"].store
    blobs = {label: store.put_batch([raw])[0].blob_id for label, raw in (("shared", SHARED), ("alpha", ALPHA))}
    blobs["bravo"] = store.put_batch([BRAVO])[0].blob_id
    try:
        yield World(app, config, folders, pids, blobs, {name: user.name for name, user in users.items()})
    finally:
        app.extensions["archiver_archive"].close()


def client_of(world: World, user: str):  # type: ignore[no-untyped-def]
    client = world.app.test_client()
    assert login(client, user, f"{user}-pass").status_code == 302
    return client


def forbidden(world: World, user: str) -> list[str]:
    """Strings that must never reach ``user``: every hidden account's private words (and the shared ones if none)."""
    hidden = [name for name in PRIVATE if name not in SEES[user]]
    words = [word for name in hidden for word in (*PRIVATE[name], world.usernames[name])]
    return words + (list(SHARED_WORDS) if not SEES[user] else [])


_ECHOES = re.compile(r'<form method="get" class="search.*?</form>|<nav class="pager".*?</nav>', re.S)


def text_of(response: TestResponse) -> str:
    """Status, headers and body, without the search form and pager (they echo the user's own query)."""
    return f"{response.status}\n{response.headers}\n{_ECHOES.sub('', response.get_data().decode('utf-8', 'replace'))}"


def crawl(world: World, user: str) -> Iterator[tuple[str, str, TestResponse]]:
    """(path, owning account or "", response) of every page, download and search of both accounts."""
    client = client_of(world, user)
    for path in ["/", "/runs", "/prefs", "/search"]:
        yield path, "", client.get(path)
    for query in QUERIES:
        yield f"/search?q={query}", "", client.get("/search", query_string={"q": query})
        yield f"/search?q={query}&page=2", "", client.get("/search", query_string={"q": query, "page": "2"})
    for account in PRIVATE:
        yield f"/search?account={account}", account, client.get("/search", query_string={"q": "*", "account": account})
        yield f"/a/{account}", account, client.get(f"/a/{account}")
        for folder_id, name in world.folders[account]:
            yield f"/f/{folder_id}", account, client.get(f"/f/{folder_id}")
            yield f"/f/{folder_id}?as_of", account, client.get(f"/f/{folder_id}", query_string={"as_of": "2099-01-01"})
            restore = {"account": account, "folder": name}
            yield f"/restore?folder={name}", account, client.get("/restore", query_string=restore)
            yield f"/search?folder={name}", "", client.get("/search", query_string={"q": "*", "folder": name})
        for pid in world.pids[account]:
            for suffix in ("", "/raw", "/html", "/part/0", "/part/1", "/part/2", "/part/3"):
                yield f"/m/{pid}{suffix}", account, client.get(f"/m/{pid}{suffix}")
            yield f"/restore?pid={pid}", account, client.get("/restore", query_string={"pid": str(pid)})
    for label, blob_id in world.blobs.items():
        yield f"/b/{label}", "", client.get(f"/b/{blob_id}", follow_redirects=True)


@pytest.mark.parametrize("user", ["alice", "bert", "nobody", "nokey"])
def test_no_page_shows_anything_of_an_account_the_user_may_not_see(world: World, user: str) -> None:
    words = forbidden(world, user)
    leaks, wrong_status = [], []
    for path, owner, response in crawl(world, user):
        text = text_of(response)
        leaks += [(path, word) for word in words if word.lower() in text.lower()]
        if owner and owner not in SEES[user] and response.status_code != 404:
            wrong_status.append((path, response.status_code))
    assert leaks == [] and wrong_status == []


def test_the_administrator_crawl_shows_everything(world: World) -> None:
    """The crawl reaches every private word when allowed: the leak test above can fail."""
    seen = "\n".join(text_of(response) for _, _, response in crawl(world, "root")).lower()
    assert [word for words in PRIVATE.values() for word in words if word.lower() not in seen] == []


def _total(page: str) -> int:
    return int(re.search(r"(\d+) message\(s\)", page).group(1))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("user", "query", "total"),
    [
        ("nobody", "*", 0),
        ("nokey", "sharedword", 0),
        ("alice", "merger", 2),
        ("bert", "merger", 2),
        ("bert", "folder:Private-Merger", 0),
        ("bert", "is:flagged", 0),  # only acct-a flagged its copy of the shared message
        ("alice", "is:unread sharedword", 1),  # acct-a's copy is unread though acct-b read its own
        ("alice", "account:acct-b OR folder:acct-b/INBOX", 0),
        ("root", "sharedword folder:Private-Merger folder:acct-b/INBOX", 1),
    ],
)
def test_search_totals_count_only_the_viewers_placements(world: World, user: str, query: str, total: int) -> None:
    page = client_of(world, user).get("/search", query_string={"q": query}).get_data(as_text=True)
    assert _total(page) == total


def test_a_shared_message_shows_and_opens_the_viewers_own_placement(world: World) -> None:
    for user, account, folder in (("alice", "acct-a", "Private-Merger"), ("bert", "acct-b", "INBOX")):
        client = client_of(world, user)
        page = client.get("/search", query_string={"q": "sharedword"}).get_data(as_text=True)
        assert f"{account}/{folder}" in page
        response = client.get(f"/b/{world.blobs['shared']}")
        assert response.status_code == 302
        pid = int(response.headers["Location"].rsplit("/", 1)[1])
        assert pid in world.pids[account]
        message = client.get(f"/m/{pid}").get_data(as_text=True)
        assert folder in message and "sharedword" in message


def test_jobs_and_restores_of_another_account_are_out_of_reach(world: World) -> None:
    bert = client_of(world, "bert")
    token = re.search(r'name="csrf_token" value="([^"]+)"', bert.get("/runs").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    started = bert.post("/backup/acct-b", data={"csrf_token": token})
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    wait(world.app.extensions["archiver_jobs"].get(job_id))
    assert "acct-b" in bert.get(f"/jobs/{job_id}").get_data(as_text=True)
    alice = client_of(world, "alice")
    token = re.search(r'name="csrf_token" value="([^"]+)"', alice.get("/runs").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    responses = {
        "job": alice.get(f"/jobs/{job_id}"),
        "backup": alice.post("/backup/acct-b", data={"csrf_token": token}),
        "restore other's message": alice.post(
            "/restore", data={"csrf_token": token, "pid": str(world.pids["acct-b"][0]), "target": "acct-a"}
        ),
        "restore into other's account": alice.post(
            "/restore", data={"csrf_token": token, "pid": str(world.pids["acct-a"][0]), "target": "acct-b"}
        ),
        "runs": alice.get("/runs"),
    }
    assert {name: r.status_code for name, r in responses.items()} == {name: 404 for name in responses} | {"runs": 200}
    for response in responses.values():
        assert not any(word.lower() in text_of(response).lower() for word in forbidden(world, "alice"))
    assert world.app.extensions["archiver_jobs"].of_user("alice") == []
