"""Build real archives for the web tests and the web bench: the same store and catalog code a backup uses.

Messages go through :meth:`BlobStore.put_batch` (hash, compress, fsync) and
:meth:`Catalog.add_placements`, exactly like a run's batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.archive import Archive
from archiver.catalog import NewPlacement
from archiver.config import Config, config_from_toml_text
from archiver.mail.headers import summarize_headers

HOSTILE_HTML = """<html><head><meta http-equiv="refresh" content="0;url=http://{remote}/meta">
<script>window.pwned = 1; alert('script')</script>
<style>body {{ background: url(http://{remote}/css-bg); width: expression(alert(1)); }}</style>
<base href="http://{remote}/"></head>
<body onload="window.pwned=2">
<h1 id="hostile-title">Hostile message</h1>
<img src="http://{remote}/img-remote" alt="remote">
<img src="x" onerror="window.pwned=3; fetch('http://{remote}/onerror')">
<a id="jslink" href="javascript:window.pwned=4">click me</a>
<svg><script>window.pwned=5</script><image href="http://{remote}/svg-image"/></svg>
<form action="http://{remote}/form" method="post"><input name="x"><button>Send</button></form>
<iframe src="http://{remote}/iframe"></iframe>
<object data="http://{remote}/object"></object>
<link rel="stylesheet" href="http://{remote}/link-css">
<video poster="http://{remote}/poster"></video>
<p style="background-image: url('http://{remote}/inline-style')">styled</p>
<img src="cid:logo@x" alt="inline logo">
</body></html>"""

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a3f6c1"
    "8a0000000049454e44ae426082"
)


def message(subject: str, body: str = "hello", *, sender: str = "Anna <anna@example.org>", n: int = 0) -> bytes:
    return (
        f"From: {sender}\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:{n % 60:02d}:00 +0000\r\nMessage-ID: <m{n}.{abs(hash(subject))}@example.org>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def hostile_message(remote: str) -> bytes:
    import base64

    html = HOSTILE_HTML.format(remote=remote)
    png = base64.b64encode(PNG_1PX).decode()
    return (
        "From: Mallory <mallory@example.org>\r\nTo: bob@example.org\r\nSubject: Hostile HTML\r\n"
        "Date: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <hostile@example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B1"\r\n\r\n'
        '--B1\r\nContent-Type: multipart/related; boundary="B2"\r\n\r\n'
        f"--B2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
        "--B2\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{png}\r\n--B2--\r\n"
        '--B1\r\nContent-Type: text/html; name="evil.html"\r\n'
        'Content-Disposition: attachment; filename="../../etc/evil \\"x\\".html"\r\n\r\n'
        "<script>alert(1)</script>\r\n--B1--\r\n"
    ).encode()


def add_messages(
    archive: Archive,
    account: str,
    folder: str,
    raws: Iterable[bytes],
    *,
    start: datetime | None = None,
    flags: tuple[str, ...] = ("\\Seen",),
    batch: int = 500,
) -> int:
    """Store and place messages in one run of ``account``; returns the run id."""
    catalog = archive.catalog
    account_id = catalog.ensure_account(account, "imap")
    run_id = catalog.start_run(account_id)
    record = catalog.ensure_folder(account_id, folder, "/", None, run_id)
    when = start or datetime(2024, 1, 1, tzinfo=UTC)
    uid = max((int(u) for u in catalog.present_uids(record.id, 1)), default=0)
    pending: list[bytes] = []

    def flush() -> None:
        nonlocal uid, when
        stored = archive.store.put_batch(pending)
        items = []
        for raw, blob in zip(pending, stored, strict=True):
            uid += 1
            when += timedelta(minutes=1)
            items.append(
                NewPlacement(uid, blob.blob_id, flags, when.isoformat(), blob.size, blob.stored_size,
                             summarize_headers(raw))
            )  # fmt: skip
        catalog.add_placements(run_id, record.id, 1, items)
        pending.clear()

    for raw in raws:
        pending.append(raw)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    catalog.finish_run(run_id, "ok", 1, 0, 0)
    return run_id


def web_config(
    root: Path, users_toml: str, accounts: Iterable[str] = ("alpha", "beta"), extra_accounts: str = ""
) -> Config:
    """A config with local accounts (never contacted), ``extra_accounts`` tables, and ``[[web.users]]`` tables."""
    text = f'[archive]\npath = "{root / "archive"}"\n'
    for name in accounts:
        text += f'[[accounts]]\nname = "{name}"\nprotocol = "local"\npassword = "secret-{name}-pw"\n'
    text += extra_accounts + users_toml
    path = root / "archiver.toml"  # on disk too: "Back up now" hands the file's text to the backup child
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return config_from_toml_text(text, path)


def closed_imap_account(name: str) -> str:
    """An IMAP account on a closed loopback port: a restore target whose connection is refused."""
    return (
        f'[[accounts]]\nname = "{name}"\nprotocol = "imap"\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\n'
        f'username = "nobody"\npassword = "secret-{name}-pw"\ntimeout = 5\n'
    )
