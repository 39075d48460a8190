"""Hostile messages for the index tests: each one stopped or blew up the search index once.

Built here rather than stored, so the big ones cost no disk in the repository and their size is a parameter.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone

#: Bytes-to-bytes codecs Python knows under a charset-like name; ``bytes.decode`` refuses each of them.
BYTES_CODECS = ("base64", "hex", "rot13", "zlib", "bz2", "uu", "quopri")

#: The latest INTERNALDATE IMAP can express, in the earliest time zone: beyond ``datetime``'s range in UTC.
LAST_INTERNALDATE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59)))


def plain(subject: str, body: str, charset: str = "utf-8", headers: bytes = b"") -> bytes:
    """A one-part text message."""
    return (
        f"From: sender@example.org\r\nTo: rcpt@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')[:60]}@example.org>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: text/plain; charset="{charset}"\r\n'.encode()
        + headers
        + f"\r\n{body}\r\n".encode()
    )


def huge_subject(megabytes: int, marker: str = "bigsubject", folded: bool = False) -> bytes:
    """A Subject of ``megabytes`` MB of words, on one line or folded every 78 bytes."""
    words = (b"x" * 75 + (b"\r\n " if folded else b" ")) * (megabytes * 1024 * 1024 // 78)
    return (
        b"From: sender@example.org\r\nSubject: " + marker.encode() + b" " + words
        + b"\r\nMessage-ID: <" + marker.encode() + b"@example.org>\r\n\r\n" + marker.encode() + b" body\r\n"
    )  # fmt: skip


def huge_header_line(megabytes: int, marker: str = "bigline") -> bytes:
    """One header line of ``megabytes`` MB (no folding at all)."""
    return (
        b"From: sender@example.org\r\nSubject: " + marker.encode() + b"\r\nX-Junk: " + b"y" * (megabytes << 20)
        + b"\r\n\r\n" + marker.encode() + b" body\r\n"
    )  # fmt: skip


def huge_part_header(megabytes: int, marker: str = "bigpart") -> bytes:
    """A multipart message whose text part carries one header line of ``megabytes`` MB."""
    return (
        b"From: sender@example.org\r\nSubject: " + marker.encode() + b'\r\nMIME-Version: 1.0\r\n'
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n'
        b"X-Junk: " + b"z" * (megabytes << 20) + b"\r\n\r\n" + marker.encode() + b" inside\r\n--b1--\r\n"
    )  # fmt: skip


def huge_body(megabytes: int, marker: str = "bigbody", in_part: bool = False) -> bytes:
    """A text body of ``megabytes`` MB of 8-bit UTF-8 (emoji: the email package keeps each byte as 4)."""
    text = marker.encode() + b" " + "\U0001f600 ".encode() * (megabytes * 1024 * 1024 // 5)
    leaf = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text
    if not in_part:
        return b"From: sender@example.org\r\nSubject: " + marker.encode() + b"\r\n" + leaf
    return (
        b"From: sender@example.org\r\nSubject: " + marker.encode()
        + b'\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n' + leaf + b"\r\n--b1--\r\n"
    )  # fmt: skip


def huge_attachment(megabytes: int, marker: str = "bigattachment", shape: str = "forwarded") -> bytes:
    """A ``megabytes`` MB base64 attachment, inside a forwarded message or in a multipart never closed."""
    import base64

    data = base64.encodebytes(bytes(range(256)) * (megabytes * 1024 * 1024 * 3 // 4 // 256)).replace(b"\n", b"\r\n")
    attachment = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + data
    inner = b"--c\r\nContent-Type: text/plain\r\n\r\n" + marker.encode() + b" inside\r\n--c\r\n" + attachment
    head = b"From: sender@example.org\r\nSubject: " + marker.encode() + b"\r\n"
    if shape == "unclosed":
        return head + b'Content-Type: multipart/mixed; boundary="c"\r\n\r\n' + inner
    return (
        head + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n'
        b'Subject: forwarded\r\nContent-Type: multipart/mixed; boundary="c"\r\n\r\n' + inner + b"\r\n--c--\r\n"
        b"\r\n--b--\r\n"
    )  # fmt: skip


def pdf_bomb(inflated_mb: int = 1024, pages: int = 4) -> bytes:
    """A small PDF whose one content stream, shared by every page, inflates to ``inflated_mb`` MB of zeros."""
    compressor = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    stream = b"".join(compressor.compress(chunk) for _ in range(inflated_mb)) + compressor.flush()
    kids = " ".join(f"{4 + n} 0 R" for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def with_pdf(subject: str, pdf: bytes) -> bytes:
    """A message with a short text body and ``pdf`` attached (base64)."""
    import base64

    encoded = base64.encodebytes(pdf).replace(b"\n", b"\r\n")
    return (
        f"From: sender@example.org\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        f"Content-Type: text/plain\r\n\r\n{subject} body\r\n--b1\r\n"
        'Content-Type: application/pdf; name="bomb.pdf"\r\nContent-Disposition: attachment; filename="bomb.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n".encode()
        + encoded
        + b"\r\n--b1--\r\n"
    )
