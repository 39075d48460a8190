"""The fast FETCH reader against imapclient's parser, on real Dovecot responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import pytest
from imapclient.response_parser import parse_fetch_response

from archiver.devtools.sample_mail import corpus_messages, generate_mailbox
from archiver.sources.imap import FETCH_ITEMS, ImapSource, uid_ranges
from archiver.sources.imap_parse import parse_body_fetch, parse_internaldate
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml

pytestmark = pytest.mark.integration

FLAG_SETS = [(), ("\\Seen",), ("\\Seen", "\\Flagged", "\\Answered"), ("$Label1", "Junk", "\\Draft"), ("\\Deleted",)]


def raw_fetch_data(source: ImapSource, uids: list[int]) -> list:
    """imaplib's untagged FETCH data for the backup's body fetch, unparsed."""
    imap = source.client._imap
    tag = imap._command("UID", "FETCH", uid_ranges(uids), "(" + " ".join(i.decode() for i in FETCH_ITEMS) + ")")
    typ, data = imap._command_complete("FETCH", tag)
    assert typ == "OK"
    return imap._untagged_response(typ, data, "FETCH")[1]


def test_fast_reader_agrees_with_imapclient_on_real_responses(dovecot, mail_user, tmp_path, corpus_dir, config_file):
    zones = [timezone(timedelta(hours=h, minutes=m)) for h, m in ((0, 0), (-8, 0), (5, 30), (-3, -30), (13, 45))]
    messages = [raw for _, raw in islice(corpus_messages(corpus_dir), 400)]
    messages += [s.raw for s in generate_mailbox(100, seed=4)]
    items = [
        (raw, FLAG_SETS[i % 5], datetime(1999 + i % 27, 1 + i % 12, 1 + i % 28, i % 24, 7, 9, tzinfo=zones[i % 5]))
        for i, raw in enumerate(messages)
    ]
    uids = dovecot.append_many(mail_user.name, "INBOX", items)
    config = parse_config(config_file(account_toml(dovecot, mail_user, security="none")))
    with ImapSource(config.accounts[0]).connect() as source:
        source.examine("INBOX")
        data = raw_fetch_data(source, uids)
        fast = parse_body_fetch(data)
        slow = parse_fetch_response(data, False, True)
        assert fast is not None, "Dovecot's plain responses must take the fast path"
        assert fast.keys() == slow.keys() == set(uids)
        for uid in uids:
            assert fast[uid] == dict(slow[uid])
            assert fast[uid][b"INTERNALDATE"].isoformat() == slow[uid][b"INTERNALDATE"].isoformat()
        fetched, missing = source.fetch(uids)  # the real path: same bytes, flags and dates
        assert not missing and [m.raw for m in fetched] == [fast[u][b"BODY[]"] for u in uids]


@pytest.mark.parametrize(
    "data",
    [
        [(b"1 (UID 5 FLAGS (\\Seen) BODY[] {3}", b"abc"), b' INTERNALDATE "01-Jan-2020 00:00:00 +0000")'],
        [(b"1 (UID 5 BODY[] {4}", b"abc")],  # literal shorter than announced
        [(b"1 (UID 5 X-GM-MSGID 7 BODY[] {3}", b"abc"), b")"],  # an item it does not know
        [(b"1 (FLAGS (\\Seen) BODY[] {3}", b"abc"), b")"],  # no UID
        [b"1 (FLAGS (\\Seen))"],  # a flag update without a body
        [(b'1 (UID 5 INTERNALDATE "31-Feb-2020 00:00:00 +0000" BODY[] {3}', b"abc"), b")"],  # no such day
    ],
)
def test_anything_unusual_is_left_to_imapclient(data):
    assert parse_body_fetch(data) is None


def test_internaldate_forms():
    assert parse_internaldate(b" 3-Nov-2026 13:59:24 +0000") == datetime(2026, 11, 3, 13, 59, 24, tzinfo=UTC)
    east = parse_internaldate(b"17-jul-1996 02:44:25 -0730")
    assert east is not None and east.utcoffset() == -timedelta(hours=7, minutes=30)
    assert parse_internaldate(b"17-Foo-1996 02:44:25 +0000") is None
    assert parse_internaldate(b"17-Jul-1996 02:44:25") is None
