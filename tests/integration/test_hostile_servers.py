"""Hostile servers: trickles, huge literals, garbage.  Each ends in one line naming the server's fault, in bounded time.

The servers are the suite's own scripted ones (tests/hostile/servers.py) on loopback; timeouts are
configured tiny so every scenario takes a second or two.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from archiver.archive import Archive
from archiver.backup import RunReport, run_backup
from archiver.config import config_from_toml_text
from tests.hostile.servers import CRLF, Connection, ImapScript, Pop3Script, message

TIMEOUT = 1.0  # the account's timeout: each line must be complete within it


def _backup(tmp_path: Path, port: int, protocol: str = "imap", archive_extra: str = "") -> tuple[RunReport, float]:
    text = f"""
[archive]
path = {json.dumps(str(tmp_path / "archive"))}
reconnect_attempts = 0
{archive_extra}

[[accounts]]
name = "acct"
protocol = "{protocol}"
host = "127.0.0.1"
port = {port}
security = "none"
username = "user"
password = "secret"
timeout = {TIMEOUT}
"""
    path = tmp_path / "archiver.toml"
    path.write_text(text)
    config = config_from_toml_text(text, path)
    started = time.monotonic()
    report = run_backup(config, config.accounts[0], index=False)
    return report, time.monotonic() - started


def _archive(tmp_path: Path) -> Archive:
    path = tmp_path / "archiver.toml"
    return Archive(config_from_toml_text(path.read_text(), path).archive)


def _archived(tmp_path: Path) -> dict[str, int]:
    """folder → messages archived."""
    with _archive(tmp_path) as archive:
        rows = archive.catalog.db.execute(
            "SELECT f.name, count(p.uid) FROM folders f LEFT JOIN placements p ON p.folder_id = f.id GROUP BY f.name"
        )
        return {name: count for name, count in rows if count}


def _run_rows(tmp_path: Path) -> list[dict]:
    with _archive(tmp_path) as archive:
        return [dict(r) for r in archive.catalog.db.execute("SELECT * FROM runs ORDER BY id")]


def _one_line(report: RunReport, *words: str) -> str:
    (problem,) = [p for p in report.problems if all(w in p for w in words)]
    assert "\n" not in problem and "Traceback" not in problem
    return problem


FOLDERS = {"INBOX": [message(1), message(2)], "Archive": [message(3)]}


class TrickleGreeting(ImapScript):
    async def greet(self, conn: Connection) -> None:
        await conn.trickle(b"* OK hostile IMAP ready, one byte at a time\r\n", 0.2)


def test_a_trickled_greeting_is_cut_off_at_the_timeout(tmp_path, hostile_server):
    server = hostile_server(TrickleGreeting(FOLDERS))
    report, seconds = _backup(tmp_path, server.port)
    assert report.status == "failed"
    _one_line(report, "no complete response within 1 s")
    assert seconds < 4 * TIMEOUT
    assert _run_rows(tmp_path)[-1]["status"] == "failed"


class TrickleBody(ImapScript):
    """Answers every FETCH of bodies one byte every 0.2 s: each recv gets a byte, the response never ends."""

    async def send_fetch(self, conn: Connection, tag: bytes, responses: list[bytes]) -> None:
        if any(b"BODY[]" in r for r in responses):
            await conn.trickle(b"".join(responses) + tag + b" OK done\r\n", 0.2)
        else:
            await super().send_fetch(conn, tag, responses)


def test_a_trickled_fetch_ends_within_the_timeout_with_one_line(tmp_path, hostile_server):
    server = hostile_server(TrickleBody({"INBOX": [message(1, 4000)]}))
    report, seconds = _backup(tmp_path, server.port)
    assert report.status == "failed"
    _one_line(report, "no complete response within", "reconnecting is off")
    assert seconds < 5 * TIMEOUT
    assert _run_rows(tmp_path)[-1]["status"] == "failed"


class SlowLiteral(ImapScript):
    """Sends the message at about 1 MB/s: fast enough for every per-response rule, slow enough to take 20 s."""

    async def send_fetch(self, conn: Connection, tag: bytes, responses: list[bytes]) -> None:
        data = b"".join(responses) + tag + b" OK done\r\n"
        for start in range(0, len(data), 32768):
            await conn.send(data[start : start + 32768])
            await asyncio.sleep(0.03)


def test_a_slow_server_cannot_outlast_the_run_time_limit(tmp_path, hostile_server):
    server = hostile_server(SlowLiteral({"INBOX": [message(1, 20_000_000)]}))
    report, seconds = _backup(tmp_path, server.port, archive_extra='max_run_time = "3s"')
    assert seconds < 3 + 2 * TIMEOUT
    _one_line(report, "stopped after the run time limit")
    assert _run_rows(tmp_path)[-1]["status"] in ("partial", "failed")


class ByeGreeting(ImapScript):
    async def greet(self, conn: Connection) -> None:
        await conn.send(b"* BYE Too many connections from your IP\r\n")


def test_a_bye_greeting_is_one_line_naming_the_refusal(tmp_path, hostile_server):
    server = hostile_server(ByeGreeting(FOLDERS))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "failed"
    _one_line(report, "turned the connection away", "Too many connections")
    assert _run_rows(tmp_path)[-1]["status"] == "failed"


class HugeGreeting(ImapScript):
    async def greet(self, conn: Connection) -> None:
        await conn.send(b"* OK " + b"x" * (1 << 20) + b"\r\n")


def test_a_megabyte_greeting_line_is_refused_without_reading_it_all(tmp_path, hostile_server):
    server = hostile_server(HugeGreeting(FOLDERS))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "failed"
    _one_line(report, "line longer than")


class BadStatus(ImapScript):
    """INBOX's STATUS has no UIDVALIDITY; Archive's says ``abc``; Sent's is fine."""

    def status_items(self, folder: str) -> bytes:
        if folder == "INBOX":
            return b"UIDNEXT 3 MESSAGES 2"
        if folder == "Archive":
            return b"UIDVALIDITY abc UIDNEXT 2 MESSAGES 1"
        return super().status_items(folder)


def test_status_without_or_with_a_bad_uidvalidity_fails_that_folder_only(tmp_path, hostile_server):
    folders = {"INBOX": [message(1)], "Archive": [message(2)], "Sent": [message(3), message(4)]}
    server = hostile_server(BadStatus(folders))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "partial"
    _one_line(report, "INBOX", "no UIDVALIDITY")
    _one_line(report, "Archive", "UIDVALIDITY is 'abc'")
    assert _archived(tmp_path) == {"Sent": 2}
    assert _run_rows(tmp_path)[-1]["status"] == "partial"


class UnknownStatusUidvalidity(ImapScript):
    """STATUS says UIDVALIDITY 0, as Dovecot does for a mailbox it is still recovering after a crash."""

    def status_items(self, folder: str) -> bytes:
        return super().status_items(folder).replace(b"UIDVALIDITY %d " % self.uidvalidity, b"UIDVALIDITY 0 ")


def test_a_zero_uidvalidity_in_status_means_look_closer_not_a_fault(tmp_path, hostile_server):
    folders = {"INBOX": [message(1)], "Sent": [message(3), message(4)]}
    server = hostile_server(UnknownStatusUidvalidity(folders))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "ok", report.problems
    assert _archived(tmp_path) == {"INBOX": 1, "Sent": 2}


class BadExamine(ImapScript):
    def examine_lines(self, folder: str) -> list[bytes]:
        lines = super().examine_lines(folder)
        return [line for line in lines if b"UIDVALIDITY" not in line] if folder == "INBOX" else lines


def test_examine_without_uidvalidity_fails_that_folder_only(tmp_path, hostile_server):
    server = hostile_server(BadExamine(FOLDERS))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "partial"
    _one_line(report, "EXAMINE 'INBOX'", "no UIDVALIDITY")
    assert _archived(tmp_path) == {"Archive": 1}


class BadUids(ImapScript):
    """INBOX's FETCH answers name UID 2 as -5; Archive's SEARCH gives a UID past 2^63 (SQLite cannot store it)."""

    def uids(self, folder: str) -> list[int]:
        return [2**63 + 1] if folder == "Archive" else super().uids(folder)

    def fetch_response(self, seq: int, uid: int, raw: bytes, items: bytes) -> bytes:
        response = super().fetch_response(seq, uid, raw, items)
        return response.replace(b"(UID 2 ", b"(UID -5 ") if self.selected == "INBOX" else response


def test_nonsense_uids_fail_their_folder_with_one_line(tmp_path, hostile_server):
    folders = {"INBOX": [message(1), message(2)], "Archive": [message(3)], "Sent": [message(4)]}
    server = hostile_server(BadUids(folders))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "partial"
    _one_line(report, "INBOX", "a UID is '-5', not a number from 1 to 4294967295")
    _one_line(report, "Archive", "a UID is '9223372036854775809'")
    assert _archived(tmp_path) == {"Sent": 1}
    assert _run_rows(tmp_path)[-1]["status"] == "partial"


class LyingLiteral(ImapScript):
    """RFC822.SIZE says a few bytes, then the body literal of INBOX's UID 2 announces ~1 TB (and never comes)."""

    def fetch_response(self, seq: int, uid: int, raw: bytes, items: bytes) -> bytes:
        response = super().fetch_response(seq, uid, raw, items)
        if b"BODY[] {" in response and self.selected == "INBOX" and uid == 2:
            return response.split(b"BODY[] {")[0] + b"BODY[] {999999999999}\r\n"
        return response

    async def send_fetch(self, conn: Connection, tag: bytes, responses: list[bytes]) -> None:
        await conn.send(b"".join(responses))
        if any(b"{999999999999}" in r for r in responses):
            await conn.stall()
        else:
            await conn.send(tag + b" OK done\r\n")


def test_a_huge_literal_is_refused_before_allocating_it_and_the_folder_goes_on(tmp_path, hostile_server):
    folders = {"INBOX": [message(1), message(2), message(3)], "Archive": [message(4)]}
    server = hostile_server(LyingLiteral(folders))
    report, seconds = _backup(tmp_path, server.port)
    assert report.status == "partial"
    _one_line(report, "INBOX", "skipped 1 message(s) larger than max_message_bytes", "2 (953674.3 MB)")
    assert _archived(tmp_path) == {"INBOX": 2, "Archive": 1}
    assert seconds < 3 * TIMEOUT
    assert server.connections == 2  # one reconnect, at once: the server was fine, we hung up on it


class BigMessage(ImapScript):
    """Honest sizes; INBOX's second message is just over the configured cap."""


def test_a_message_over_max_message_bytes_is_skipped_and_the_folder_goes_on(tmp_path, hostile_server):
    folders = {"INBOX": [message(1), message(2, 300_000), message(3)], "Archive": [message(4)]}
    server = hostile_server(BigMessage(folders))
    report, _ = _backup(tmp_path, server.port, archive_extra="max_message_bytes = 200000")
    assert report.status == "partial"
    _one_line(report, "INBOX", "skipped 1 message(s) larger than max_message_bytes", "2 (0.3 MB)")
    assert _archived(tmp_path) == {"INBOX": 2, "Archive": 1}


class DropMidResponse(ImapScript):
    async def send_fetch(self, conn: Connection, tag: bytes, responses: list[bytes]) -> None:
        data = b"".join(responses)
        if b"BODY[]" in data:
            await conn.send(data[: len(data) // 2])
            conn.writer.close()
        else:
            await super().send_fetch(conn, tag, responses)


def test_a_connection_dropped_mid_response_is_one_line(tmp_path, hostile_server):
    server = hostile_server(DropMidResponse(FOLDERS))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "failed"
    _one_line(report, "connection was lost", "reconnecting is off")
    assert _run_rows(tmp_path)[-1]["status"] == "failed"


class Garbage(ImapScript):
    """INBOX's FETCH answers are noise; the other folder is fine."""

    async def send_fetch(self, conn: Connection, tag: bytes, responses: list[bytes]) -> None:
        if self.selected == "INBOX":
            await conn.send(b"* 1 FETCH (UID 1 RFC822.SIZE ((( \x00\xff garbage\r\n" + tag + b" OK done\r\n")
        else:
            await super().send_fetch(conn, tag, responses)


def test_garbage_in_a_fetch_answer_fails_that_folder_only(tmp_path, hostile_server):
    server = hostile_server(Garbage(FOLDERS))
    report, _ = _backup(tmp_path, server.port)
    assert report.status == "partial"
    _one_line(report, "INBOX")
    assert _archived(tmp_path) == {"Archive": 1}


# -- POP3 ---------------------------------------------------------------------------------------------------


class EndlessMessage(Pop3Script):
    """Message 2 never ends: lines at full speed, no terminating dot."""

    async def send_message(self, conn: Connection, number: int) -> None:
        if number != 2:
            return await super().send_message(conn, number)
        await conn.send(b"+OK message follows\r\n")
        line = b"y" * 998 + CRLF
        while True:
            await conn.send(line * 64)


def test_a_pop3_message_that_never_ends_is_skipped_and_the_rest_archived(tmp_path, hostile_server):
    server = hostile_server(EndlessMessage([message(1), message(2), message(3)]))
    report, seconds = _backup(tmp_path, server.port, "pop3", "max_message_bytes = 1000000")
    assert report.status == "partial"
    _one_line(report, "skipped 1 message(s) larger than max_message_bytes", "u2")
    assert _archived(tmp_path) == {"INBOX": 2}
    assert seconds < 10


class TrickleRetr(Pop3Script):
    """Message 1 arrives as short lines, each quickly, but one byte every 0.1 s overall: no line is late."""

    async def send_message(self, conn: Connection, number: int) -> None:
        await conn.send(b"+OK message follows\r\n")
        await conn.trickle(b"a\r\n" * 200 + b".\r\n", 0.1)


def test_a_trickled_pop3_message_ends_within_the_timeout(tmp_path, hostile_server):
    server = hostile_server(TrickleRetr([message(1)]))
    report, seconds = _backup(tmp_path, server.port, "pop3")
    assert report.status == "partial"  # a POP3 run that could not finish its one folder
    _one_line(report, "no complete response within", "reconnecting is off")
    assert seconds < 4 * TIMEOUT


class TricklePop3Greeting(Pop3Script):
    async def greet(self, conn: Connection) -> None:
        await conn.trickle(b"+OK hostile POP3 ready, one byte at a time\r\n", 0.2)


def test_a_trickled_pop3_greeting_is_cut_off(tmp_path, hostile_server):
    server = hostile_server(TricklePop3Greeting([message(1)]))
    report, seconds = _backup(tmp_path, server.port, "pop3")
    assert report.status == "failed"
    _one_line(report, "no complete response within 1 s")
    assert _run_rows(tmp_path)[-1]["status"] == "failed"
    assert seconds < 4 * TIMEOUT


class BigPop3Message(Pop3Script):
    """Honest LIST sizes; message 2 is over the cap."""


def test_a_pop3_message_listed_over_the_cap_is_never_fetched(tmp_path, hostile_server):
    server = hostile_server(BigPop3Message([message(1), message(2, 300_000)]))
    report, _ = _backup(tmp_path, server.port, "pop3", "max_message_bytes = 200000")
    assert report.status == "partial"
    _one_line(report, "skipped 1 message(s) larger than max_message_bytes", "u2 (0.3 MB)")
    assert _archived(tmp_path) == {"INBOX": 1}


class BadUidl(Pop3Script):
    def uidl_lines(self) -> list[bytes]:
        return [b"1 u1", b"-2 u2"]


def test_garbage_in_a_pop3_uidl_listing_is_one_line(tmp_path, hostile_server):
    server = hostile_server(BadUidl([message(1), message(2)]))
    report, _ = _backup(tmp_path, server.port, "pop3")
    assert report.status == "partial"
    _one_line(report, "unexpected UIDL line")
    assert _run_rows(tmp_path)[-1]["status"] == "partial"


class EndlessUntagged(ImapScript):
    """Answers EXAMINE with untagged lines that never end: fast ones (a flood) or one every 0.1 s (a drip)."""

    def __init__(self, folders: dict[str, list[bytes]], interval: float) -> None:
        super().__init__(folders)
        self.interval = interval

    async def answer(self, conn: Connection, tag: bytes, verb: bytes, args: bytes) -> None:
        if verb != b"EXAMINE":
            return await super().answer(conn, tag, verb, args)
        while True:
            await conn.send(b"* 1 RECENT\r\n" if self.interval else b"* OK " + b"x" * 4000 + b"\r\n")
            await asyncio.sleep(self.interval)


def test_endless_short_lines_cannot_outlast_the_response_deadline(tmp_path, hostile_server):
    server = hostile_server(EndlessUntagged(FOLDERS, interval=0.1))
    report, seconds = _backup(tmp_path, server.port)
    assert report.status == "failed"
    _one_line(report, "no complete response within")
    assert seconds < 4 * TIMEOUT


def test_an_endless_flood_of_lines_is_cut_at_the_response_cap(tmp_path, hostile_server):
    server = hostile_server(EndlessUntagged(FOLDERS, interval=0))
    report, seconds = _backup(tmp_path, server.port, archive_extra="max_message_bytes = 1000000")
    assert report.status == "partial"
    _one_line(report, "INBOX", "the server's answer went on past")
    assert seconds < 30
