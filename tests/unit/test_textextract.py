"""Text extraction: charsets, RFC 2047, HTML, attachments, PDF, never a crash."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from archiver.mail.textextract import ExtractLimits, MessageText, decode_text, detect_language, extract, html_to_text
from tests.fixtures.corpus import CORPUS_DIR as CORPUS
from tests.fixtures.hostile_mail import broken_charset_with_pdf, make_pdf


def test_decode_text_is_lenient() -> None:
    problems: list[str] = []
    assert decode_text("café".encode("latin-1"), "iso-8859-1") == "café"
    assert decode_text("日本語".encode("shift_jis"), "shift_jis") == "日本語"
    assert decode_text("Привет".encode("koi8-r"), "koi8-r") == "Привет"
    assert decode_text("naïve".encode(), "x-unknown-thing", problems) == "naïve"
    assert problems and "unknown charset" in problems[0]
    mixed = decode_text(b"caf\xe9 \xff", "utf-8", problems)  # lies about its charset
    assert mixed.startswith("caf")


def test_rfc2047_headers_and_html_only_body() -> None:
    message = EmailMessage()
    message["From"] = "Élodie Dupré <elodie@example.fr>"
    message["To"] = "Иван <ivan@example.ru>"
    message["Subject"] = "Réunion à Montréal — 会議"
    message.set_content("<html><head><style>p{}</style></head><body><p>Bonjour&nbsp;à tous</p><br>"
                        "<script>var x;</script>la réunion est demain</body></html>", subtype="html")  # fmt: skip
    text = extract(message.as_bytes())
    assert text.sender == "Élodie Dupré <elodie@example.fr>"
    assert "Иван" in text.to
    assert text.subject == "Réunion à Montréal — 会議"
    assert "Bonjour à tous" in text.body and "var x" not in text.body and "p{}" not in text.body
    assert text.language == "fr"


def test_broken_charset_and_pdf_attachment_are_read() -> None:
    text = extract(broken_charset_with_pdf("zeppelin"))
    assert "Quarterly zeppelin report page 1" in text.attachment_text
    assert text.attachment_names == ["facture.pdf"] and text.has_attachment
    assert "caf" in text.body and "inclus" in text.body
    assert text.subject == "Facture décembre"
    assert any("x-bogus-8" in p for p in text.problems)  # the reason is recorded, not hidden


def test_pdf_page_cap_is_recorded() -> None:
    message = EmailMessage()
    message.set_content("see attached")
    message.add_attachment(make_pdf("long", pages=5), maintype="application", subtype="pdf", filename="l.pdf")
    text = extract(message.as_bytes(), ExtractLimits(max_pdf_pages=2))
    assert "long page 2" in text.attachment_text and "long page 3" not in text.attachment_text
    assert any("longer than 2 pages" in p for p in text.problems)


def test_oversized_attachment_is_named_not_read() -> None:
    message = EmailMessage()
    message.set_content("big one")
    message.add_attachment(b"needle " * 2000, maintype="text", subtype="plain", filename="big.txt")
    text = extract(message.as_bytes(), ExtractLimits(max_attachment_bytes=1000))
    assert text.attachment_names == ["big.txt"] and "needle" not in text.attachment_text
    assert any("too large" in p for p in text.problems)
    assert "needle" in extract(message.as_bytes()).attachment_text


def test_html_to_text_and_language() -> None:
    assert html_to_text("a<b>b</b>&amp;<!-- hidden -->c<p>d<td>e") == "ab&c\nd\ne"
    assert detect_language("Le chat est sur la table et nous sommes dans le jardin") == "fr"
    assert detect_language("The cat is on the table and we are in the garden") == "en"


def test_garbage_never_raises() -> None:
    for raw in (b"", b"\x00\xff" * 100, b"Content-Type: multipart/mixed\r\n\r\nno boundary", b"Subject: =?\r\n"):
        extract(raw)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_whole_corpus_extracts() -> None:
    files = sorted(p for p in CORPUS.rglob("*.eml"))
    assert len(files) > 1000
    with_text = 0
    for path in files:
        text = extract(path.read_bytes())
        with_text += bool(text.body or text.subject or text.attachment_text)
    assert with_text > 0.95 * len(files)


def _parsed_text(raw: bytes) -> MessageText:
    """What :func:`extract` gives when the email package parses the whole message (no splitting)."""
    from unittest import mock

    from archiver.mail import textextract

    with mock.patch.object(textextract, "SPLIT_FROM", 10**12):
        return extract(raw)


def test_big_messages_are_split_with_the_same_text() -> None:
    from archiver.devtools.sample_mail import generate_mailbox
    from archiver.mail.textextract import SPLIT_FROM

    big = [m.raw for m in generate_mailbox(400, seed=9) if len(m.raw) >= SPLIT_FROM]
    assert len(big) >= 20
    message = EmailMessage()  # a binary attachment before a text one, a PDF, nested multiparts, a message
    message["Subject"] = "split me"
    message.set_content("body text\n")
    message.add_alternative("<p>body <b>html</b></p>", subtype="html")
    message.add_attachment(bytes(range(256)) * 600, maintype="image", subtype="png", filename="photo.png")
    message.add_attachment("notes in a text file\n", filename="notes.txt")
    message.add_attachment(make_pdf("split pdf"), maintype="application", subtype="pdf", filename="s.pdf")
    inner = EmailMessage()
    inner["Subject"] = "forwarded"
    inner.set_content("inner words")
    message.add_attachment(inner)
    big.append(message.as_bytes())
    for raw in big:
        assert extract(raw) == _parsed_text(raw)
    text = extract(big[-1])
    assert "notes in a text file" in text.attachment_text and "split pdf page 1" in text.attachment_text
    assert text.attachment_names == ["photo.png", "notes.txt", "s.pdf"] and "inner words" in text.body


def test_split_leaves_odd_multiparts_to_the_email_package() -> None:
    padding = b"X" * (70 * 1024)
    head = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
    unterminated = head + b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + padding
    assert extract(unterminated) == _parsed_text(unterminated)
    assert extract(unterminated).body == "hi"
