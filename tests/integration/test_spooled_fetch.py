"""Messages over the spool threshold (received into ``blobs/tmp/``, not memory) against the scripted IMAP server.

The server's unusual answer forms and a drop in the middle of a big literal must
end as for a small message: archived byte exact, or one line; and never leave a
spool file behind in the archive while the process goes on (a daemon lives long).
"""

from __future__ import annotations

import hashlib

from archiver.sources.spool import SPOOL_THRESHOLD
from tests.fixtures.hostile_servers import (
    Connection,
    ImapScript,
    archived_per_folder,
    backup_from,
    message,
    one_problem_line,
    open_configured_archive,
)

BIG = SPOOL_THRESHOLD + 3 * 2**20


class ExtraItemAfterBody(ImapScript):
    """Sends a non-standard item after the body literal: only imapclient's parser reads such an answer."""

    def fetch_response(self, seq: int, uid: int, raw: bytes, items: bytes) -> bytes:
        response = super().fetch_response(seq, uid, raw, items)
        return response[:-3] + b" X-EXTRA NIL)\r\n" if b"BODY.PEEK[]" in items.upper() else response


def test_a_big_message_in_an_unusual_answer_form_is_archived_byte_exact(tmp_path, hostile_server):
    big = message(2, BIG)
    server = hostile_server(ExtraItemAfterBody({"INBOX": [message(1), big, message(3)]}))
    report, _ = backup_from(tmp_path, server.port)
    assert report.status == "ok", report.problems
    with open_configured_archive(tmp_path) as archive:
        assert archive.store.get(hashlib.sha256(big).hexdigest()) == big
        assert list(archive.store.temp_dir.iterdir()) == []
    assert archived_per_folder(tmp_path) == {"INBOX": 3}


class DropInBigLiteral(ImapScript):
    """Hangs up 10 MB into the big message's literal (past the threshold, so it is being spooled)."""

    async def send_fetch(self, conn: Connection, tag: bytes, responses: list[bytes]) -> None:
        data = b"".join(responses)
        if len(data) > BIG:
            await conn.send(data[: data.index(b"BODY[]") + 10 * 2**20])
            conn.writer.close()
        else:
            await super().send_fetch(conn, tag, responses)


def test_a_drop_inside_a_spooled_literal_is_one_line_and_leaves_no_spool_file(tmp_path, hostile_server):
    server = hostile_server(DropInBigLiteral({"INBOX": [message(1), message(2, BIG)]}))
    report, _ = backup_from(tmp_path, server.port)
    assert report.status == "failed"
    one_problem_line(report, "connection was lost")
    with open_configured_archive(tmp_path) as archive:
        assert list(archive.store.temp_dir.iterdir()) == []
