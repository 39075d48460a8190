"""Small scripted IMAP and POP3 servers on loopback that misbehave on purpose.

Each server speaks just enough of its protocol for a backup to run against a
few folders of messages (read-only: LIST, STATUS, EXAMINE, UID SEARCH, UID FETCH
for IMAP; CAPA, USER/PASS, LIST, UIDL, TOP, RETR, RSET for POP3), and every
answer goes through a method a scenario overrides: a subclass that trickles the
greeting, announces a literal it never sends, answers STATUS without
UIDVALIDITY… The servers run on an asyncio loop in a thread of their own, on
127.0.0.1 and a port the system picks; :class:`Running` stops them (the fixture
in ``tests/hostile/conftest.py`` does it for every test).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterator

CRLF = b"\r\n"
DATE = b'"01-Jan-2024 10:00:00 +0000"'


def message(number: int, size: int = 0) -> bytes:
    """A small valid message (padded to ``size`` bytes when given)."""
    raw = (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: message %d\r\n"
        b"Message-ID: <m%d@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nbody %d\r\n"
        % (number, number, number)
    )
    return raw + b"x" * max(0, size - len(raw) - 2) + (CRLF if size > len(raw) else b"")


class Connection:
    """One client's connection, as a scenario sees it: send, trickle, read a command, hang up."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self, data: bytes, interval: float = 0.2) -> None:
        """One byte per ``interval``: each ``recv`` gets something, so a per-recv timeout never fires."""
        for index in range(len(data)):
            await self.send(data[index : index + 1])
            await asyncio.sleep(interval)

    async def stall(self) -> None:
        """Say nothing more until the client hangs up (or the server stops)."""
        await self.reader.read()

    async def command(self) -> bytes | None:
        line = await self.reader.readline()
        return line.rstrip(CRLF) if line else None


class ImapScript:
    """A read-only IMAP server over ``folders`` (name → messages, UIDs 1…n); override a method to misbehave."""

    uidvalidity = 7

    def __init__(self, folders: dict[str, list[bytes]]) -> None:
        self.folders = folders
        self.selected: str | None = None

    # -- what a scenario overrides ----------------------------------------------------------
    async def greet(self, conn: Connection) -> None:
        await conn.send(b"* OK [CAPABILITY IMAP4rev1] hostile IMAP ready\r\n")

    def status_items(self, folder: str) -> bytes:
        count = len(self.folders[folder])
        return b"UIDVALIDITY %d UIDNEXT %d MESSAGES %d" % (self.uidvalidity, count + 1, count)

    def examine_lines(self, folder: str) -> list[bytes]:
        count = len(self.folders[folder])
        return [
            b"* %d EXISTS" % count,
            b"* OK [UIDVALIDITY %d] ok" % self.uidvalidity,
            b"* OK [UIDNEXT %d] ok" % (count + 1),
        ]

    def uids(self, folder: str) -> list[int]:
        return list(range(1, len(self.folders[folder]) + 1))

    def fetch_response(self, seq: int, uid: int, raw: bytes, items: bytes) -> bytes:
        """One ``* n FETCH (…)`` response for the items asked for (their plain forms, as Dovecot sends them)."""
        parts = [b"UID %d" % uid]
        upper = items.upper()
        if b"FLAGS" in upper:
            parts.append(b"FLAGS (\\Seen)")
        if b"INTERNALDATE" in upper:
            parts.append(b"INTERNALDATE " + DATE)
        if b"RFC822.SIZE" in upper:
            parts.append(b"RFC822.SIZE %d" % len(raw))
        if b"HEADER.FIELDS" in upper:
            header = re.search(rb"^Message-ID:.*\r\n", raw, re.M | re.I)
            value = (header.group(0) if header else b"") + CRLF
            parts.append(b"BODY[HEADER.FIELDS (MESSAGE-ID)] {%d}\r\n%s" % (len(value), value))
        elif b"BODY.PEEK[]" in upper:
            parts.append(b"BODY[] {%d}\r\n%s" % (len(raw), raw))
        return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts))

    async def send_fetch(self, conn: Connection, tag: bytes, responses: list[bytes]) -> None:
        await conn.send(b"".join(responses) + tag + b" OK FETCH done\r\n")

    # -- the protocol -----------------------------------------------------------------------------
    async def serve(self, conn: Connection) -> None:
        await self.greet(conn)
        while (line := await conn.command()) is not None:
            tag, _, rest = line.partition(b" ")
            verb, _, args = rest.partition(b" ")
            verb = verb.upper()
            if verb == b"UID":
                verb, _, args = args.partition(b" ")
                verb = b"UID " + verb.upper()
            if verb == b"LOGOUT":
                await conn.send(b"* BYE bye\r\n" + tag + b" OK LOGOUT done\r\n")
                return
            await self.answer(conn, tag, verb, args)

    async def answer(self, conn: Connection, tag: bytes, verb: bytes, args: bytes) -> None:
        if verb == b"CAPABILITY":
            await conn.send(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
        elif verb in (b"LOGIN", b"NOOP", b"ENABLE"):
            await conn.send(tag + b" OK done\r\n")
        elif verb == b"LIST":
            lines = b"".join(b'* LIST (\\HasNoChildren) "/" "%s"\r\n' % name.encode() for name in self.folders)
            await conn.send(lines + tag + b" OK LIST done\r\n")
        elif verb == b"STATUS":
            folder = _folder(args)
            await conn.send(
                b'* STATUS "%s" (%s)\r\n' % (folder.encode(), self.status_items(folder)) + tag + b" OK done\r\n"
            )
        elif verb in (b"EXAMINE", b"SELECT"):
            self.selected = _folder(args)
            lines = b"".join(line + CRLF for line in self.examine_lines(self.selected))
            await conn.send(lines + tag + b" OK [READ-ONLY] done\r\n")
        elif verb == b"UID SEARCH":
            uids = self.uids(self.selected or "")
            found = _select(uids, args.split()[-1]) if b"UID" in args.upper() else uids
            await conn.send(b"* SEARCH %s\r\n" % b" ".join(b"%d" % uid for uid in found) + tag + b" OK done\r\n")
        elif verb == b"UID FETCH":
            uid_set, _, items = args.partition(b" ")
            messages = self.folders[self.selected or ""]
            uids = self.uids(self.selected or "")
            wanted = set(_select(uids, uid_set))
            responses = [
                self.fetch_response(seq, uid, messages[seq - 1], items)
                for seq, uid in enumerate(uids, start=1)
                if uid in wanted and seq <= len(messages)
            ]
            await self.send_fetch(conn, tag, responses)
        else:
            await conn.send(tag + b" BAD unknown command\r\n")


class Pop3Script:
    """A POP3 maildrop of ``messages`` (UIDL ``u1``, ``u2``…); override a method to misbehave."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages

    async def greet(self, conn: Connection) -> None:
        await conn.send(b"+OK hostile POP3 ready\r\n")

    def uidl_lines(self) -> list[bytes]:
        return [b"%d u%d" % (n, n) for n in range(1, len(self.messages) + 1)]

    def list_lines(self) -> list[bytes]:
        return [b"%d %d" % (n, len(raw)) for n, raw in enumerate(self.messages, start=1)]

    async def send_message(self, conn: Connection, number: int) -> None:
        raw = self.messages[number - 1]
        stuffed = re.sub(rb"(?m)^\.", b"..", raw)
        await conn.send(b"+OK message follows\r\n" + stuffed + (b"" if raw.endswith(CRLF) else CRLF) + b".\r\n")

    async def serve(self, conn: Connection) -> None:
        await self.greet(conn)
        while (line := await conn.command()) is not None:
            verb, *args = line.split()
            verb = verb.upper()
            if verb == b"CAPA":
                await conn.send(b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n")
            elif verb in (b"USER", b"PASS", b"RSET", b"NOOP"):
                await conn.send(b"+OK\r\n")
            elif verb == b"LIST":
                await conn.send(b"+OK\r\n" + b"".join(line + CRLF for line in self.list_lines()) + b".\r\n")
            elif verb == b"UIDL":
                await conn.send(b"+OK\r\n" + b"".join(line + CRLF for line in self.uidl_lines()) + b".\r\n")
            elif verb in (b"TOP", b"RETR"):
                await self.send_message(conn, int(args[0]))
            elif verb == b"QUIT":
                await conn.send(b"+OK bye\r\n")
                return
            else:
                await conn.send(b"-ERR unknown command\r\n")


def _folder(args: bytes) -> str:
    match = re.match(rb'"((?:[^"\\]|\\.)*)"|(\S+)', args)
    assert match is not None
    return (match.group(1) if match.group(1) is not None else match.group(2)).decode()


def _select(uids: list[int], uid_set: bytes) -> list[int]:
    """The UIDs of ``uids`` in an IMAP sequence set ("1:5,9", "3:*")."""
    top = max(uids, default=0)
    chosen: set[int] = set()
    for part in uid_set.split(b","):
        low, _, high = part.partition(b":")
        start = top if low == b"*" else int(low)
        end = start if not high else (top if high == b"*" else int(high))
        start, end = min(start, end), max(start, end)
        chosen.update(uid for uid in uids if start <= uid <= end)
    return sorted(chosen)


class Running:
    """A script served on 127.0.0.1:``port`` from a loop in its own thread until :meth:`stop`."""

    def __init__(self, script: ImapScript | Pop3Script) -> None:
        self.script = script
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self.script.serve(Connection(reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextlib.contextmanager
def serving(script: ImapScript | Pop3Script) -> Iterator[Running]:
    running = Running(script)
    try:
        yield running
    finally:
        running.stop()
