"""Provider limits against the suite's scripted IMAP server: Microsoft-style throttling and Gmail's daily quota.

A throttled run waits and completes with every message; a server that never stops throttling ends the
run ``partial`` with one line in bounded time; a quota reached mid-folder stops the run at once, and the
next run fetches only what the catalog lacks.
"""

from __future__ import annotations

import hashlib
import logging

from archiver.daemon.status import collect_status
from tests.fixtures.hostile_servers import (
    Connection,
    Pop3Script,
    RefusingScript,
    archived_messages,
    backup_from,
    message,
    one_problem_line,
    open_configured_archive,
    run_rows,
)

MICROSOFT = 'provider = "microsoft365"\nauth = "password"'
GMAIL = 'provider = "gmail"\nauth = "password"'
FOLDERS_SMALL = {"INBOX": [message(1)], "Archive": [message(2)]}


class ThrottlesThenAnswers(RefusingScript):
    """Every way Microsoft 365 (and RFC 5530) says "slow down", each once or twice, then plain answers."""

    def __init__(self, folders: dict[str, list[bytes]]) -> None:
        super().__init__(folders)
        self.script = {
            (b"STATUS", "INBOX"): [b"NO [UNAVAILABLE] Server Unavailable. 15"],
            (b"UID FETCH BODY", "INBOX"): [
                b"NO [THROTTLED] Request is throttled. Retry after 200 milliseconds",
                b"BAD Request is throttled. Try again in 0.3 seconds",
            ],
            (b"EXAMINE", "Archive"): [b"* BYE [UNAVAILABLE] Request is throttled"],
        }

    async def refuse(self, conn: Connection, tag: bytes, verb: bytes, folder: str | None, body: bool) -> bool:
        if body:
            verb = b"UID FETCH BODY"
        answers = self.script.get((verb, folder or ""))
        if not answers:
            return False
        answer = answers.pop(0)
        if answer.startswith(b"* BYE"):
            await conn.send(answer + b"\r\n")
            conn.writer.close()
        else:
            await conn.send(tag + b" " + answer + b"\r\n")
        return True


def test_a_throttled_run_waits_logs_each_back_off_and_completes_with_every_message(tmp_path, hostile_server, caplog):
    folders = {"INBOX": [message(n, 2000) for n in range(1, 6)], "Archive": [message(6), message(7)]}
    server = hostile_server(ThrottlesThenAnswers(folders))
    with caplog.at_level(logging.WARNING, logger="archiver.backup"):
        report, seconds = backup_from(
            tmp_path, server.port, archive_extra="batch_messages = 2", account_extra=MICROSOFT
        )
    assert report.status == "ok", report.problems
    archived = archived_messages(tmp_path)
    for name, raws in folders.items():
        got = {uid: hashlib.sha256(raw).hexdigest() for uid, raw in archived[name].items()}
        assert got == {uid: hashlib.sha256(raw).hexdigest() for uid, raw in enumerate(raws, start=1)}
    back_offs = [r.getMessage() for r in caplog.records if "the server is throttling" in r.getMessage()]
    assert len(back_offs) == 4, back_offs
    assert any("asking again in 0.2 s" in line for line in back_offs)  # the server's hints are honoured
    assert any("asking again in 0.3 s" in line for line in back_offs)
    assert 0.5 + 0.2 + 0.3 + 0.5 <= seconds < 8  # each wait was waited, none longer than its step
    assert sorted(server.script.bodies) == sorted(set(server.script.bodies))  # nothing fetched twice
    assert run_rows(tmp_path)[-1]["status"] == "ok"


class ThrottlesForever(RefusingScript):
    """INBOX's first body batch comes through; from then on every command is throttled."""

    async def refuse(self, conn: Connection, tag: bytes, verb: bytes, folder: str | None, body: bool) -> bool:
        if not any(folder == "INBOX" for folder, _ in self.bodies):
            return False
        await conn.send(tag + b" NO [THROTTLED] Request is throttled\r\n")
        return True


def test_a_server_that_keeps_throttling_ends_the_run_partial_with_one_line_in_bounded_time(tmp_path, hostile_server):
    folders = {"INBOX": [message(1), message(2), message(3)], "Archive": [message(4)]}
    server = hostile_server(ThrottlesForever(folders))
    report, seconds = backup_from(
        tmp_path,
        server.port,
        archive_extra="batch_messages = 1\nthrottle_patience = 2",
        account_extra=MICROSOFT,
    )
    assert report.status == "partial"
    line = one_problem_line(report, "the server kept throttling", "Microsoft 365 limits", "next run continues")
    assert line.startswith("acct: ") and "[THROTTLED]" in line
    assert 1.5 <= seconds < 6
    assert archived_messages(tmp_path).keys() == {"INBOX"}  # the committed batch is kept; Archive never asked
    assert ("Archive", b"EXAMINE") not in server.script.commands
    assert run_rows(tmp_path)[-1]["status"] == "partial"


class GmailQuota(RefusingScript):
    """Gmail: after ``allowance`` body FETCHes, every command is ``NO [OVERQUOTA]`` until ``limited`` is cleared."""

    def __init__(self, folders: dict[str, list[bytes]], allowance: int) -> None:
        super().__init__(folders)
        self.allowance = allowance
        self.limited = True

    async def refuse(self, conn: Connection, tag: bytes, verb: bytes, folder: str | None, body: bool) -> bool:
        if not self.limited or (body and self.allowance > 0):
            self.allowance -= body
            return False
        if not body and self.allowance > 0:
            return False
        await conn.send(tag + b" NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)\r\n")
        return True


def test_gmail_daily_quota_stops_the_run_partial_and_the_next_run_fetches_only_the_rest(tmp_path, hostile_server):
    folders = {"INBOX": [message(n) for n in range(1, 6)], "Archive": [message(6), message(7)]}
    script = GmailQuota(folders, allowance=2)
    server = hostile_server(script)
    report, seconds = backup_from(tmp_path, server.port, archive_extra="batch_messages = 2", account_extra=GMAIL)
    assert report.status == "partial"
    line = one_problem_line(report, "Gmail's daily download quota was reached", "next run resumes")
    assert "OVERQUOTA" in line and "without downloading it again" in line
    assert seconds < 3  # no retries, no waits
    assert {uid for _, uid in script.bodies} == {1, 2, 3, 4}  # two batches, then the refusal
    assert sorted(archived_messages(tmp_path)["INBOX"]) == [1, 2, 3, 4]
    assert ("Archive", b"EXAMINE") not in script.commands and not any(f == "Archive" for f, _ in script.commands)
    first = run_rows(tmp_path)[-1]
    assert first["status"] == "partial" and first["messages_new"] == 4
    with open_configured_archive(tmp_path) as archive:  # what `archiver status` and the web pages read
        (status,) = collect_status(archive, ["acct"])
    assert status["last_run"]["status"] == "partial" and status["last_error"]["message"] == line

    script.limited = False  # a day later
    script.bodies.clear()
    report, _ = backup_from(tmp_path, server.port, archive_extra="batch_messages = 2", account_extra=GMAIL)
    assert report.status == "ok", report.problems
    assert sorted(script.bodies) == [("Archive", 1), ("Archive", 2), ("INBOX", 5)]  # only what was missing
    second = run_rows(tmp_path)[-1]
    assert second["status"] == "ok" and second["messages_new"] == 3
    archived = archived_messages(tmp_path)
    assert {name: sorted(uids) for name, uids in archived.items()} == {"INBOX": [1, 2, 3, 4, 5], "Archive": [1, 2]}


class Pop3Limits(Pop3Script):
    """RETR of message ``refused_from`` on is ``-ERR`` ``answer`` (``times`` times, or until ``limited`` is cleared)."""

    def __init__(self, messages: list[bytes], refused_from: int, answer: bytes, times: int | None = None) -> None:
        super().__init__(messages)
        self.refused_from = refused_from
        self.answer = answer
        self.times = times
        self.limited = True
        self.sent: list[int] = []

    async def send_message(self, conn: Connection, number: int) -> None:
        if self.limited and number >= self.refused_from and (self.times is None or self.times > 0):
            self.times = None if self.times is None else self.times - 1
            await conn.send(b"-ERR " + self.answer + b"\r\n")
            return
        self.sent.append(number)
        await super().send_message(conn, number)


def test_pop3_throttling_is_waited_out_and_the_maildrop_completes(tmp_path, hostile_server):
    messages = [message(1), message(2), message(3)]
    script = Pop3Limits(messages, 2, b"[SYS/TEMP] Request is throttled. Retry after 100 milliseconds", times=2)
    server = hostile_server(script)
    report, _ = backup_from(tmp_path, server.port, "pop3", account_extra=MICROSOFT)
    assert report.status == "ok", report.problems
    assert sorted(script.sent) == [1, 2, 3]  # nothing read twice
    archived = archived_messages(tmp_path)["INBOX"]
    assert sorted(hashlib.sha256(raw).digest() for raw in archived.values()) == sorted(
        hashlib.sha256(raw).digest() for raw in messages
    )


def test_a_pop3_quota_mid_batch_keeps_what_was_read_and_the_next_run_reads_only_the_rest(tmp_path, hostile_server):
    messages = [message(1), message(2), message(3), message(4)]
    script = Pop3Limits(messages, 3, b"[SYS/PERM] Account exceeded command or bandwidth limits")
    server = hostile_server(script)
    report, _ = backup_from(tmp_path, server.port, "pop3", account_extra=GMAIL)
    assert report.status == "partial"
    one_problem_line(report, "Gmail's daily download quota was reached", "next run resumes")
    assert len(archived_messages(tmp_path)["INBOX"]) == 2  # the batch's first two are kept
    script.limited = False
    script.sent.clear()
    report, _ = backup_from(tmp_path, server.port, "pop3", account_extra=GMAIL)
    assert report.status == "ok", report.problems
    assert sorted(script.sent) == [3, 4]
    assert run_rows(tmp_path)[-1]["messages_new"] == 2


class LoginLimits(RefusingScript):
    """LOGIN is refused with ``answers`` in turn, then accepted."""

    def __init__(self, folders: dict[str, list[bytes]], answers: list[bytes]) -> None:
        super().__init__(folders)
        self.answers = answers

    async def refuse(self, conn: Connection, tag: bytes, verb: bytes, folder: str | None, body: bool) -> bool:
        if verb != b"LOGIN" or not self.answers:
            return False
        await conn.send(tag + b" " + self.answers.pop(0) + b"\r\n")
        return True


def test_a_throttled_login_is_waited_out(tmp_path, hostile_server):
    script = LoginLimits(FOLDERS_SMALL, [b"NO [THROTTLED] Request is throttled. Retry after 100 milliseconds"])
    report, _ = backup_from(tmp_path, hostile_server(script).port, account_extra=MICROSOFT)
    assert report.status == "ok", report.problems
    assert [verb for _, verb in script.commands].count(b"LOGIN") == 2


def test_gmail_over_its_quota_at_login_is_partial_not_an_authentication_failure(tmp_path, hostile_server):
    answer = b"NO [ALERT] Account exceeded command or bandwidth limits. (Failure)"
    script = LoginLimits(FOLDERS_SMALL, [answer] * 5)
    report, seconds = backup_from(tmp_path, hostile_server(script).port, account_extra=GMAIL)
    assert report.status == "partial" and seconds < 2
    line = one_problem_line(report, "LOGIN: Gmail's daily download quota was reached", "next run resumes")
    assert "login refused" not in line
    assert [verb for _, verb in script.commands].count(b"LOGIN") == 1  # asked once: asking again makes it worse
