"""Pure sync logic: fingerprints, VANISHED and Gmail responses (recorded server lines), flag history SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from imapclient.response_parser import parse_fetch_response

from archiver.backup.fingerprint import Fingerprint, KnownCopy, fingerprint, instant, match_known
from archiver.catalog import Catalog, NewPlacement
from archiver.catalog.history import flag_timeline, flags_as_of
from archiver.catalog.labels import decode_labels, encode_labels
from archiver.mail.headers import HeaderSummary
from archiver.sources.gmail import parse_labels, sync_order
from archiver.sources.imap import _header_fields, parse_vanished


def test_instant_compares_moments_not_offsets():
    east = datetime(2020, 5, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    utc = datetime(2020, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert instant(east) == instant(utc) == instant(utc.isoformat()) == instant("2020-05-01T10:00:00.4+00:00")
    assert instant(datetime(2020, 5, 1, 10, 0, 0)) == instant(utc)  # naive is UTC
    assert instant(None) is None and instant("not a date") is None


def test_fingerprint_reads_the_message_id_like_the_catalog():
    print_ = fingerprint(b"Message-ID: <abc@example.org>\r\n\r\n", 1234, datetime(2020, 1, 1, tzinfo=UTC))
    assert print_ == Fingerprint("<abc@example.org>", 1234, "2020-01-01T00:00:00+00:00")
    assert print_.usable
    folded = fingerprint(b"Message-Id:\r\n <abc@example.org>\r\n\r\n", 1234, datetime(2020, 1, 1, tzinfo=UTC))
    assert folded.message_id == "<abc@example.org>"
    assert not fingerprint(b"\r\n", 1234, datetime(2020, 1, 1, tzinfo=UTC)).usable
    assert not fingerprint(None, 10, None).usable


def test_match_known_is_strict():
    when = "2020-01-01T00:00:00+00:00"
    a = Fingerprint("<a@x>", 100, when)
    b = Fingerprint("<b@x>", 200, when)
    twin = Fingerprint("<t@x>", 300, when)
    known = [
        KnownCopy("blob-a", a),
        KnownCopy("blob-a", a),  # the same blob in two folders is still one blob
        KnownCopy("blob-b", b),
        KnownCopy("blob-t1", twin),
        KnownCopy("blob-t2", twin),  # two different blobs share the fingerprint: doubt
        KnownCopy("blob-n", Fingerprint(None, 400, when)),
    ]
    new = {
        1: a,
        2: Fingerprint("<b@x>", 201, when),  # size differs
        3: Fingerprint("<b@x>", 200, "2020-01-01T00:00:01+00:00"),  # date differs
        4: twin,
        5: Fingerprint(None, 400, when),  # no Message-ID: never matched
        6: b,
        7: Fingerprint("<new@x>", 1, when),
    }
    assert match_known(new, known) == {1: "blob-a", 6: "blob-b"}


def test_parse_vanished_recorded_responses():
    assert parse_vanished([b"(EARLIER) 3"]) == {3}
    assert parse_vanished([b"(EARLIER) 41,43:45,100:98", b"7"]) == {7, 41, 43, 44, 45, 98, 99, 100}
    assert parse_vanished([]) == set()


def test_header_fields_from_a_recorded_fetch():
    line = (
        b'12 (UID 57 RFC822.SIZE 4021 INTERNALDATE "01-Jan-2020 10:00:00 +0000" FLAGS (\\Seen) '
        b"BODY[HEADER.FIELDS (MESSAGE-ID)] {27}",
        b"Message-ID: <m57@x.org>\r\n\r\n",
    )
    parsed = parse_fetch_response([line, b")"], False, True)
    data = parsed[57]
    assert _header_fields(data) == b"Message-ID: <m57@x.org>\r\n\r\n"
    assert fingerprint(_header_fields(data), data[b"RFC822.SIZE"], data[b"INTERNALDATE"]).message_id == "<m57@x.org>"


def test_gmail_labels_from_recorded_responses():
    # As Gmail answers UID FETCH ... (X-GM-MSGID X-GM-LABELS) (its documented examples, plus a UTF-7 label).
    raw = [
        b'1 (X-GM-MSGID 1278455344230334865 X-GM-LABELS (\\Inbox \\Sent Important "Muy Importante") UID 10)',
        b"2 (X-GM-MSGID 1278455344230334866 X-GM-LABELS () UID 11)",
        b"3 (X-GM-MSGID 1278455344230334867 X-GM-LABELS (&AOk-t&AOk- Work/2020 \\Important) UID 12)",
    ]
    parsed = parse_fetch_response(raw, False, True)
    assert parsed[10][b"X-GM-MSGID"] == 1278455344230334865
    assert parse_labels(parsed[10][b"X-GM-LABELS"]) == ("Important", "Muy Importante", "\\Inbox", "\\Sent")
    assert parse_labels(parsed[11][b"X-GM-LABELS"]) == ()
    assert parse_labels(parsed[12][b"X-GM-LABELS"]) == ("Work/2020", "\\Important", "été")
    labels = parse_labels(parsed[10][b"X-GM-LABELS"])
    assert decode_labels(encode_labels(labels)) == labels
    assert parse_labels(None) == ()


def test_all_mail_is_synced_first():
    class F:
        def __init__(self, name, special_use=None):
            self.name, self.special_use = name, special_use

    folders = [F("INBOX"), F("Work"), F("[Gmail]/All Mail", "\\All"), F("[Gmail]/Sent Mail", "\\Sent")]
    assert [f.name for f in sync_order(folders)] == ["[Gmail]/All Mail", "INBOX", "Work", "[Gmail]/Sent Mail"]


def _placement(uid: int, flags: tuple[str, ...]) -> NewPlacement:
    summary = HeaderSummary(f"<{uid}@x>", None, None, None, None)
    return NewPlacement(uid, f"{uid:064x}", flags, None, 10, 10, summary)


def test_flag_history_answers_flags_as_of_each_run(tmp_path):
    with Catalog.open(tmp_path) as catalog:
        account = catalog.ensure_account("a", "imap")
        run1 = catalog.start_run(account)
        folder = catalog.ensure_folder(account, "INBOX", "/", None, run1)
        catalog.add_placements(run1, folder.id, 7, [_placement(1, ()), _placement(2, ("\\Seen",))])
        run2 = catalog.start_run(account)
        assert catalog.update_flags(run2, folder.id, 7, {1: ("\\Seen",), 2: ("\\Seen",)}) == 1
        run3 = catalog.start_run(account)
        assert catalog.update_flags(run3, folder.id, 7, {1: ("\\Flagged", "\\Seen")}) == 1
        run4 = catalog.start_run(account)
        ids = {row.uid: row.id for row in catalog.placements_as_of(account, "INBOX")}
        assert flags_as_of(catalog.db, ids[1], run1) == ""
        assert flags_as_of(catalog.db, ids[1], run2) == "\\Seen"
        assert flags_as_of(catalog.db, ids[1], run4) == "\\Flagged \\Seen"
        assert flags_as_of(catalog.db, ids[2], run1) == "\\Seen"  # never changed: no history rows needed
        assert (
            catalog.db.execute("SELECT COUNT(*) FROM flag_history WHERE placement_id = ?", (ids[2],)).fetchone()[0] == 0
        )
        assert [(run, flags) for run, _at, flags in flag_timeline(catalog.db, ids[1])] == [
            (run1, ""),
            (run2, "\\Seen"),
            (run3, "\\Flagged \\Seen"),
        ]
        by_run = {
            run: {row.uid: row.flags for row in catalog.placements_as_of(account, "INBOX", run)}
            for run in (run1, run2, run3)
        }
        assert by_run[run1] == {1: (), 2: ("\\Seen",)}
        assert by_run[run2] == {1: ("\\Seen",), 2: ("\\Seen",)}
        assert by_run[run3] == {1: ("\\Flagged", "\\Seen"), 2: ("\\Seen",)}


def test_gmail_labels_are_stored_per_message_and_found_by_msgid(tmp_path):
    from archiver.catalog.labels import blobs_by_gm_msgid, labels_of_blob, record_labels

    with Catalog.open(tmp_path) as catalog:
        account = catalog.ensure_account("g", "imap")
        run = catalog.start_run(account)
        all_mail = catalog.ensure_folder(account, "[Gmail]/All Mail", "/", "\\All", run)
        work = catalog.ensure_folder(account, "Work", "/", None, run)
        catalog.add_placements(run, all_mail.id, 1, [_placement(1, ()), _placement(2, ())])
        record_labels(catalog, all_mail.id, 1, {1: (111, ("\\Inbox", "Work")), 2: (222, ())})
        assert blobs_by_gm_msgid(catalog, account, [111, 222, 333]) == {111: f"{1:064x}", 222: f"{2:064x}"}
        assert blobs_by_gm_msgid(catalog, catalog.ensure_account("other", "imap"), [111]) == {}
        # The label folder's copy points at the same blob; labels are the union over placements.
        catalog.add_placements(run, work.id, 9, [_placement(1, ())])
        record_labels(catalog, work.id, 9, {1: (111, ("Work", "Later"))})
        assert labels_of_blob(catalog, account, f"{1:064x}") == ("Later", "Work", "\\Inbox")
        # A label change on a later run (msgid unknown in that fetch) keeps the msgid.
        assert record_labels(catalog, all_mail.id, 1, {1: (None, ("Work",))}) == 1
        assert blobs_by_gm_msgid(catalog, account, [111]) == {111: f"{1:064x}"}


def test_status_short_circuit_needs_highestmodseq():
    from archiver.backup.imap import folder_unchanged
    from archiver.catalog import FolderRecord
    from archiver.sources.model import FolderStatus

    record = FolderRecord(1, 1, "INBOX", "/", None, 7, 100, None, 90, None)
    # No CONDSTORE: a flag change would leave STATUS identical, so it proves nothing.
    assert not folder_unchanged(record, FolderStatus(7, 100, 90, None))
