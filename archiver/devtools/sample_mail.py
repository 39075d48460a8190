"""Seeded, realistic sample mailboxes for the demo, the tests and the benchmarks.

Deterministic for a seed (one ``random.Random``, no clock), streaming (memory
stays flat at 100,000 messages), and realistic where our figures depend on it:
sizes from a few KB to several MB (most 3–30 KB, ~10 % with 50 KB–2 MB
attachments, ~0.5 % 3–8 MB), plain and multipart/alternative bodies, quoted
reply chains, signatures and list footers (which compress), PDF-like and CSV
attachments (compressible) next to random binary ones (not), RFC 2047 headers,
quoted-printable and 8-bit UTF-8 bodies in several languages, nested folders
with non-ASCII names, and exact duplicates across folders (dedup).

Also :func:`corpus_messages`, the messages of the shared real-world corpus.
"""

from __future__ import annotations

import base64
import quopri
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path

_WORDS = (  # noqa: SIM905 - a sentence of words reads better than an 80-item literal
    "the quarterly report meeting budget server backup migration invoice schedule review draft proposal "
    "customer release deadline project update network storage archive mailbox restore policy contract "
    "analysis design feedback question answer weekend travel hotel flight agenda minutes summary "
    "performance latency database index search cluster deploy rollback incident postmortem ticket "
    "we you they should could would please thanks regards tomorrow today next last week month year "
    "and or but with without for from into onto about after before during because although"
).split()
_FOREIGN = {
    "fr": "Bonjour, voici le compte rendu de la réunion. Les décisions prises concernent le budget, "
    "l'été prochain et la sécurité des données. À bientôt, et merci pour votre travail.",
    "de": "Hallo zusammen, anbei die Übersicht für die nächste Woche. Bitte prüft die Änderungen "
    "bis Freitag; Grüße aus München und schöne Grüße an das Team.",
    "ru": "Здравствуйте! Отправляю отчёт о резервном копировании почты. Все сообщения сохранены, "
    "проверка завершена без ошибок. С уважением, отдел эксплуатации.",
    "ja": "お疲れ様です。メールのバックアップについてご報告します。すべてのフォルダを確認し、"
    "問題は見つかりませんでした。よろしくお願いいたします。",
}
_PEOPLE = [
    ("Alice Martin", "alice@example.org"), ("Bob Schmidt", "bob@example.net"),
    ("Chloé Dubois", "chloe@exemple.fr"), ("Дмитрий Иванов", "dmitry@example.ru"),
    ("田中 太郎", "tanaka@example.jp"), ("Erin O'Neil", "erin@lists.example.com"),
    ("Frank Müller", "frank@example.de"), ("Grace Hopper", "grace@navy.example.mil"),
]  # fmt: skip
_LISTS = ["python-dev", "rust-users", "dovecot"]
_FOLDER_POOL = [
    "INBOX", "Sent", "Drafts", "Archive/2016", "Archive/2017", "Archive/2018", "Archive/2019", "Archive/2020",
    "Archive/2021", "Archive/2022", "Work/Projects/Apollo", "Work/Projects/Zephyr", "Work/Projects/Apollo/Specs",
    "Work/Admin", "Lists/python-dev", "Lists/rust-users", "Lists/dovecot", "Reisen/Übersicht", "日本語",
    "Факты", "Bills & Receipts", "Family/Photos/2019", "Family/Letters", "Receipts/Shops/Online/2023",
    "Newsletters", "Old Stuff & Misc",
]  # fmt: skip
# Relative weights: INBOX and the archives are big, most others small.
_FOLDER_WEIGHTS = {"INBOX": 20, "Sent": 6, "Archive/": 6, "Lists/": 4}


@dataclass(frozen=True)
class SampleMessage:
    folder: str
    raw: bytes
    flags: tuple[str, ...]
    internaldate: datetime


def folder_names(folders: int = 26) -> list[str]:
    """The folder tree used for ``folders`` folders (always starting with INBOX)."""
    if folders <= len(_FOLDER_POOL):
        return _FOLDER_POOL[:folders]
    return _FOLDER_POOL + [f"Extra/Folder {i:03d}" for i in range(folders - len(_FOLDER_POOL))]


def _weight(folder: str) -> int:
    for prefix, weight in _FOLDER_WEIGHTS.items():
        if folder == prefix or (prefix.endswith("/") and folder.startswith(prefix)):
            return weight
    return 1


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(6, 18))
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    return [" ".join(_sentence(rng) for _ in range(rng.randint(2, 6))) for _ in range(count)]


def _wrap(text: str, width: int = 72) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _encoded_header(value: str, rng: random.Random) -> str:
    if value.isascii():
        return value
    charset = "iso-8859-1" if rng.random() < 0.3 and _latin1_ok(value) else "utf-8"
    return Header(value, charset).encode(maxlinelen=76)


def _latin1_ok(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _address(person: tuple[str, str], rng: random.Random) -> str:
    name, addr = person
    return f"{_encoded_header(name, rng)} <{addr}>" if not name.isascii() else f'"{name}" <{addr}>'


def _text_body(rng: random.Random, history: list[str]) -> str:
    language = rng.choice(["en"] * 7 + list(_FOREIGN))
    parts = _paragraphs(rng, rng.randint(1, 5))
    if language != "en":
        parts.insert(0, _FOREIGN[language])
    lines: list[str] = []
    for paragraph in parts:
        lines += [*_wrap(paragraph), ""]
    if history and rng.random() < 0.4:  # a quoted reply chain repeats earlier text
        lines.append("On a previous day, someone wrote:")
        lines += ["> " + line for line in rng.choice(history).split("\n")[:60]]
    lines += ["-- ", "Sent from a very reliable mail client", "Example Corp, 1 Example Street"]
    return "\n".join(lines)


def _attachment(rng: random.Random, boundary: str) -> list[str]:
    kind = rng.choices(["pdf", "csv", "bin"], weights=[4, 3, 3])[0]
    size = int(rng.lognormvariate(11.5, 0.9))  # median ~100 KB
    size = max(50_000, min(size, 2_000_000))
    if rng.random() < 0.05:
        size = rng.randint(3_000_000, 8_000_000)
    if kind == "csv":
        rows = ["date,account,amount,currency,description"]
        total = len(rows[0])
        while total < size:
            rows.append(
                f"2021-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},{rng.randint(1000, 9999)},"
                f"{rng.randint(1, 99999) / 100:.2f},EUR,{rng.choice(_WORDS)} {rng.choice(_WORDS)}"
            )
            total += len(rows[-1])
        payload, mime, name = "\n".join(rows).encode(), "text/csv", f"report-{rng.randint(1, 999)}.csv"
    elif kind == "pdf":
        text = " ".join(_sentence(rng) for _ in range(max(1, size // 400)))
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        payload = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                   b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
                   b"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"
                   + f"4 0 obj << /Length {len(stream)} >>\nstream\n".encode() + stream
                   + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")  # fmt: skip
        mime, name = "application/pdf", f"document-{rng.randint(1, 999)}.pdf"
    else:
        payload = rng.randbytes(size)
        mime, name = rng.choice([("image/jpeg", "photo.jpg"), ("application/zip", "archive.zip")])
    encoded = base64.encodebytes(payload).decode("ascii").replace("\n", "\r\n")
    return [f"--{boundary}", f'Content-Type: {mime}; name="{name}"', "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment; filename="{name}"', "", encoded.rstrip("\r\n")]  # fmt: skip


def _message(rng: random.Random, number: int, folder: str, when: datetime, history: list[str]) -> bytes:
    sender, recipient = rng.sample(_PEOPLE, 2)
    subject = rng.choice(["Re: ", "", "", "Fwd: "]) + " ".join(rng.choices(_WORDS, k=rng.randint(2, 7))).capitalize()
    if rng.random() < 0.15:
        subject += " — " + rng.choice(["résumé", "Übersicht", "отчёт", "報告"])
    body = _text_body(rng, history)
    history.append(body)
    if len(history) > 50:
        del history[0]
    headers = [
        f"Received: from mx{rng.randint(1, 9)}.example.net ([192.0.2.{rng.randint(1, 254)}]) by mail.example.org "
        f"with ESMTPS id {rng.getrandbits(64):016x}; {format_datetime(when)}",
        f"Received: from client.example.net by mx.example.net with ESMTP id {rng.getrandbits(48):012x}; "
        f"{format_datetime(when - timedelta(seconds=rng.randint(1, 90)))}",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=sel1; h=from:to:subject:date;\r\n"
        f"\tb={base64.b64encode(rng.randbytes(128)).decode()}",
        f"Message-ID: <{number}.{rng.getrandbits(40):010x}@example.net>",
        f"Date: {format_datetime(when)}",
        f"From: {_address(sender, rng)}",
        f"To: {_address(recipient, rng)}",
        f"Subject: {_encoded_header(subject, rng)}",
        "MIME-Version: 1.0",
    ]
    if folder.startswith("Lists/"):
        name = folder.split("/", 1)[1]
        headers.append(f"List-Id: {name} <{name}.lists.example.com>")
    if number > 1 and rng.random() < 0.3:
        ref = f"<{rng.randint(1, number - 1)}.ref@example.net>"
        headers += [f"In-Reply-To: {ref}", f"References: {ref}"]
    qp = rng.random() < 0.4
    encoded_body = quopri.encodestring(body.encode()).decode("ascii") if qp else body
    text_part = [
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {'quoted-printable' if qp else '8bit'}",
        "",
        encoded_body,
    ]
    with_attachment = rng.random() < 0.10
    alternative = rng.random() < 0.3
    if not with_attachment and not alternative:
        lines = headers + text_part
    else:
        boundary = f"=_b{rng.getrandbits(48):012x}"
        kind = "mixed" if with_attachment else "alternative"
        lines = [
            *headers,
            f'Content-Type: multipart/{kind}; boundary="{boundary}"',
            "",
            "This is a multi-part message in MIME format.",
            f"--{boundary}",
            *text_part,
        ]
        if alternative:
            html = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
            lines += [
                f"--{boundary}",
                "Content-Type: text/html; charset=utf-8",
                "Content-Transfer-Encoding: quoted-printable",
                "",
                quopri.encodestring(f"<html><body>{html}</body></html>".encode()).decode("ascii"),
            ]
        if with_attachment:
            lines += _attachment(rng, boundary)
        lines.append(f"--{boundary}--")
    text = "\r\n".join(line.replace("\r\n", "\n").replace("\n", "\r\n") for line in lines) + "\r\n"
    return text.encode("utf-8")


def generate_mailbox(count: int, seed: int = 1, folders: int = 26, duplicate_ratio: float = 0.03
                     ) -> Iterator[SampleMessage]:  # fmt: skip
    """Yield ``count`` messages; a ``duplicate_ratio`` share are exact copies of earlier ones in another folder."""
    rng = random.Random(seed)
    names = folder_names(folders)
    weights = [_weight(name) for name in names]
    start = datetime(2015, 1, 1, tzinfo=UTC)
    span = 10 * 365 * 24 * 3600
    history: list[str] = []
    reservoir: list[SampleMessage] = []
    for number in range(1, count + 1):
        if reservoir and rng.random() < duplicate_ratio:
            original = rng.choice(reservoir)
            folder = rng.choice([n for n in names if n != original.folder])
            yield SampleMessage(folder, original.raw, original.flags, original.internaldate)
            continue
        folder = names[number - 1] if number <= len(names) else rng.choices(names, weights)[0]
        offset = timezone(timedelta(hours=rng.choice([-8, -5, 0, 1, 2, 3, 9])))
        when = (start + timedelta(seconds=rng.randint(0, span))).astimezone(offset).replace(microsecond=0)
        raw = _message(rng, number, folder, when, history)
        flags = tuple(sorted(f for f, p in (("\\Seen", 0.7), ("\\Flagged", 0.05), ("\\Answered", 0.1),
                                             ("$Label1", 0.02)) if rng.random() < p))  # fmt: skip
        message = SampleMessage(folder, raw, flags, when)
        if len(raw) < 200_000:  # bounded reservoir: memory stays flat
            if len(reservoir) < 64:
                reservoir.append(message)
            else:
                reservoir[rng.randrange(64)] = message
        yield message


def without_message_id(raw: bytes) -> bytes:
    """The message with its Message-ID header line removed: what old mail, digests and bounces look like.

    The generated messages keep Message-ID on one unfolded line, so dropping that line is exact.
    """
    head, separator, body = raw.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"message-id:")]
    return b"\r\n".join(lines) + separator + body


def corpus_messages(corpus_dir: Path) -> Iterator[tuple[str, bytes]]:
    """(relative path, raw bytes) of every message file in the shared corpus."""
    corpus_dir = Path(corpus_dir)
    manifest = corpus_dir / "MANIFEST.tsv"
    paths: list[Path] = []
    if manifest.exists():
        lines = manifest.read_text(errors="replace").splitlines()
        header = lines[0].split("\t") if lines else []
        column = next((i for i, name in enumerate(header) if name.lower() in ("path", "file", "filename")), 0)
        for line in lines[1:]:
            fields = line.split("\t")
            if len(fields) > column:
                candidate = corpus_dir / fields[column]
                if candidate.is_file():
                    paths.append(candidate)
    if not paths:
        skip = {"MANIFEST.tsv", "SOURCES.md", "README.md", "LICENSE"}
        paths = [p for p in sorted(corpus_dir.rglob("*")) if p.is_file() and p.name not in skip]
    for path in paths:
        yield str(path.relative_to(corpus_dir)), path.read_bytes()
