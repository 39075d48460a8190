"""A throwaway private Dovecot for the test suite, the demo command and the benchmarks.

Why a real server: the edges (IMAP/POP3, TLS, UIDs, flags, INTERNALDATE) are
only proven against the thing users run, and Dovecot starts in well under a
second.  Everything a sandbox owns lives under one ``root``: its config, a
self-signed certificate (SAN ``127.0.0.1`` and ``localhost``), the passwd-file,
the maildirs, the runtime sockets, the state and the log.  It listens only on
127.0.0.1 on free ports (plain IMAP with STARTTLS, IMAPS, plain POP3 with STLS,
POP3S).  The master runs in the foreground (``dovecot -F``) as our child and is
stopped by its pid, so several sandboxes can run at once.

One exception to "under root": run as root, Dovecot refuses uid 0 for mail and
switches to the ``dovecot`` user, which cannot traverse a private (0700) parent
such as pytest's ``/tmp/pytest-of-root``.  Only then the passwd-file and the
homes go to a 0755 directory of their own in the system temp dir, linked from
``root/data`` and removed by :meth:`DovecotSandbox.close`.

Dovecot 2.3 behaviour the rest of the code may rely on (checked by
``tests/integration/test_sandbox.py``):

* ``BODY[]`` always has CRLF line endings: a message appended with CRLF comes
  back byte for byte; one appended with bare LF (or mixed) comes back with every
  LF turned into CRLF.  Compare server bytes with server bytes, not with input.
* INTERNALDATE keeps the instant, not the offset: it comes back in the server's
  local zone.  ``\\Recent`` shows up in FLAGS of freshly appended messages.
* The hierarchy separator is ``/`` (``maildir`` with ``LAYOUT=fs``), so names
  may contain ``.`` and non-ASCII (modified UTF-7 on the wire and on disk).
* After login: CONDSTORE, QRESYNC, UIDPLUS, MULTIAPPEND, LITERAL+, MOVE,
  SPECIAL-USE and more; the greeting offers STARTTLS (POP3: STLS).
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import imapclient

from archiver.sources.imap import quiet_protocol_trace

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")  # also a file name: passwd.d/<name>
APPEND_BATCH = 200  # messages per MULTIAPPEND: one round trip and one index transaction each

Message = tuple[bytes, Sequence[str | bytes], datetime | None]
FetchedMessage = tuple[bytes, tuple[bytes, ...], datetime]


class MailOwner(NamedTuple):
    """Who owns the maildirs and which users Dovecot's own processes switch to."""

    uid: int
    gid: int
    internal_user: str
    internal_group: str  # owns Dovecot's internal sockets; rootless, it must be one of ours
    login_user: str


def mail_owner() -> MailOwner:
    """The ``dovecot`` user when we are root (mail as uid 0 is refused), else ourselves."""
    if os.getuid() != 0:
        me = getpass.getuser()
        return MailOwner(os.getuid(), os.getgid(), me, grp.getgrgid(os.getgid()).gr_name, me)
    internal = pwd.getpwnam("dovecot")
    login = "dovenull" if _user_exists("dovenull") else "dovecot"
    return MailOwner(internal.pw_uid, internal.pw_gid, "dovecot", grp.getgrgid(internal.pw_gid).gr_name, login)


def free_ports(count: int) -> list[int]:
    """Ports that were free a moment ago; all probes stay bound together so no port repeats."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((LOCALHOST, 0))
        return [probe.getsockname()[1] for probe in probes]


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1/localhost, valid a week.

    It is its own CA (``basicConstraints CA:TRUE``, ``keyCertSign``) so clients
    can use it as ``tls_ca_file``, even with strict X.509 checking; EC keeps the
    key generation to a few milliseconds.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    extensions = [
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,digitalSignature,keyCertSign",
        "extendedKeyUsage=serverAuth",
    ]
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    command += ["-keyout", str(key), "-out", str(cert), "-days", "7", "-subj", "/CN=archiver sandbox"]
    for extension in extensions:
        command += ["-addext", extension]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl could not make the sandbox certificate: {result.stderr.strip()}")
    key.chmod(0o600)
    return cert, key


class DovecotSandbox:
    """A private Dovecot on 127.0.0.1 with random free ports, its own config, self-signed cert,
    passwd-file users and maildirs under ``root``."""

    def __init__(self, root: Path, oauth2_settings: str | None = None) -> None:
        """``oauth2_settings``: the lines of a ``dovecot-oauth2.conf.ext`` (introspection URL and attributes);
        given, XOAUTH2 and OAUTHBEARER logins are checked against that authorization server while password
        logins keep working for every user."""
        self.root = Path(root).resolve()
        self.oauth2_settings = oauth2_settings
        self.host = LOCALHOST
        self.imap_port = self.imaps_port = self.pop3_port = self.pop3s_port = 0
        self.ca_file = self.root / "cert.pem"
        self.config_file = self.root / "dovecot.conf"
        self.log_file = self.root / "dovecot.log"
        self.owner = mail_owner()
        self.data_dir = self.root  # replaced by _prepare_data_dir when the owner cannot reach root
        self._process: subprocess.Popen[bytes] | None = None
        self._users: dict[str, str] = {}
        self._prepared = False  # data_dir holds passwd.d/ and home/
        self._serving = False  # our greeting was seen on imap_port
        self._token = secrets.token_hex(8)  # in the greeting: proves the port is ours, not another server's

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> DovecotSandbox:
        """Write the config (first time: cert and ports too), start Dovecot, wait for the IMAP greeting."""
        if shutil.which("dovecot") is None:
            raise RuntimeError("dovecot is not installed (Debian: apt-get install dovecot-imapd dovecot-pop3d)")
        if self._process is not None:
            return self
        for sub in ("run", "state"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._prepare_data_dir()
        if not self.ca_file.exists():
            make_certificate(self.root)
        if not self.imap_port:
            self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = free_ports(4)
        if self.oauth2_settings is not None:  # in data_dir: the auth process may run as the mail owner
            settings = self.data_dir / "dovecot-oauth2.conf.ext"
            settings.write_text(self.oauth2_settings)
            settings.chmod(0o600)  # it holds the introspection client's secret
            if os.getuid() == 0:
                os.chown(settings, self.owner.uid, self.owner.gid)
        self.config_file.write_text(self._config_text())
        with (self.root / "dovecot.stderr").open("wb") as stderr:
            self._process = subprocess.Popen(
                [*_die_with_parent(), "dovecot", "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # Ctrl-C reaches only us; stop() signals the group as a whole
            )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        """Stop Dovecot by our child's pid: SIGTERM to its process group, SIGKILL if it lingers.

        Signalling the group (its own session, see :meth:`start`) rather than
        the master alone saves a second: the master otherwise waits that long
        for its children before it exits.
        """
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT)
        if self._serving:  # else the port may be another server's (a failed start)
            self._wait_until_port_closed()
        self._serving = False

    def restart(self) -> None:
        """Stop and start again on the same ports with the same data (fault tests)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop Dovecot and remove the data directory kept outside ``root``, if there is one."""
        self.stop()
        if self.data_dir != self.root:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self.root / "data").unlink()
            self.data_dir = self.root

    @property
    def pid(self) -> int | None:
        """The master's pid while it runs (for fault tests that signal it themselves)."""
        return None if self._process is None else self._process.pid

    def __enter__(self) -> DovecotSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- users and mail -----------------------------------------------------------------
    def add_user(self, name: str, password: str) -> None:
        """Add a user, usable at once; re-passwording an existing user takes up to a second.

        Each user has a passwd-file of their own (``passwd.d/<name>``): Dovecot
        checks a passwd-file for changes at most once a second, so one shared
        file would hide users added within a second of the last login, while a
        new file is read on first use.
        """
        if not _USER_NAME.fullmatch(name) or ":" in password or "\n" in password:
            raise ValueError(f"unusable sandbox user {name!r}: letters, digits and ._@+- only; no ':' in passwords")
        changed = self._users.get(name) not in (None, password)
        self._users[name] = password
        if self._prepared:
            self._write_passwd(name, password)
        if changed and self._process is not None:
            time.sleep(1.05 - time.time() % 1)  # past the next whole second, when Dovecot looks again

    def maildir(self, user: str) -> Path:
        """The user's Maildir (INBOX itself; subfolders are directories inside it, ``LAYOUT=fs``)."""
        return self.data_dir / "home" / user / "Maildir"

    def connect(self, user: str, password: str | None = None) -> imapclient.IMAPClient:
        """A logged-in client over the plain port (no TLS: speed); the caller logs out.

        ``password`` defaults to the one given to :meth:`add_user`.
        """
        client = imapclient.IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=30)
        quiet_protocol_trace(client)  # filling big mailboxes: no repr of every APPEND
        try:
            client.login(user, password if password is not None else self._users[user])
        except Exception:
            client.shutdown()
            raise
        return client

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``doveadm -c <our config> args...`` (not checked: callers look at returncode/stderr)."""
        return subprocess.run(["doveadm", "-c", str(self.config_file), *args], capture_output=True, text=True)

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        flags: Sequence[str | bytes] = (),
        internaldate: datetime | None = None,
    ) -> int:
        """APPEND one message (creating the folder and its parents); returns its UID.

        ``folder`` is the decoded name with ``/`` between levels.  Give
        ``internaldate`` a tzinfo: a naive datetime is sent as local time.
        """
        return self.append_many(user, folder, [(raw, flags, internaldate)])[0]

    def append_many(self, user: str, folder: str, messages: Iterable[Message]) -> list[int]:
        """APPEND many messages over one connection with MULTIAPPEND batches; returns their UIDs in order."""
        client = self.connect(user)
        try:
            ensure_folder(client, folder)
            uids: list[int] = []
            batch: list[dict[str, object]] = []
            for raw, flags, when in messages:
                item: dict[str, object] = {"msg": raw, "flags": tuple(flags)}
                if when is not None:
                    item["date"] = when
                batch.append(item)
                if len(batch) == APPEND_BATCH:
                    uids += _multiappend(client, folder, batch)
                    batch = []
            if batch:
                uids += _multiappend(client, folder, batch)
            return uids
        finally:
            client.logout()

    def make_folders_on_disk(
        self, user: str, names: Iterable[str], message: Callable[[str], bytes | None] | None = None
    ) -> int:
        """Create folders (each holding ``message(name)`` unless None) straight in the user's maildir; returns how many.

        Thousands of CREATE + APPEND round trips take minutes; Dovecot picks up maildir directories and
        files it did not write at the next LIST/STATUS, which is what a scale test or bench needs.
        Names are plain ASCII without ``&`` (no modified UTF-7 encoding is done here).
        """
        maildir = self.maildir(user)
        count = 0
        for name in names:
            if not name.isascii() or "&" in name:
                raise ValueError(f"folder {name!r}: ASCII without '&' only")
            folder = maildir / name
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            raw = None if message is None else message(name)
            if raw is not None:
                (folder / "cur" / f"{1_700_000_000 + count}.M{count}P1.sandbox:2,S").write_bytes(raw)
            count += 1
        if os.getuid() == 0:  # Dovecot reads and writes them as the mail owner
            for path in (maildir, *maildir.rglob("*")):
                os.chown(path, self.owner.uid, self.owner.gid)
        return count

    def fetch_all(self, user: str, password: str | None, folder: str) -> dict[int, FetchedMessage]:
        """uid → (BODY[] bytes, flags, INTERNALDATE with its offset) of every message, read-only (EXAMINE, PEEK)."""
        client = self.connect(user, password)
        client.normalise_times = False
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            result: dict[int, FetchedMessage] = {}
            for start in range(0, len(uids), 500):
                data = client.fetch(uids[start : start + 500], [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"])
                for uid, item in data.items():
                    result[uid] = (item[b"BODY[]"], tuple(item[b"FLAGS"]), item[b"INTERNALDATE"])
            return result
        finally:
            client.logout()

    # -- internals -------------------------------------------------------------------------
    def _prepare_data_dir(self) -> None:
        """Make the passwd-file and homes reachable by the mail owner (see the module docstring)."""
        if self.data_dir == self.root and os.getuid() == 0 and not _traversable(self.root, self.owner):
            self.data_dir = Path(tempfile.mkdtemp(prefix="archiver-dovecot-"))
            self.data_dir.chmod(0o755)
            link = self.root / "data"
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.data_dir)
        for sub in ("home", "passwd.d"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
            if os.getuid() == 0:
                os.chown(self.data_dir / sub, self.owner.uid, self.owner.gid)
        self._prepared = True
        for name, password in self._users.items():
            self._write_passwd(name, password)

    def _write_passwd(self, name: str, password: str) -> None:
        """Write one user's passwd-file atomically, with a later mtime than before (Dovecot's change check)."""
        directory = self.data_dir / "passwd.d"
        target, temporary = directory / name, directory / f".{name}.tmp"
        temporary.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        temporary.chmod(0o600)
        if os.getuid() == 0:
            os.chown(temporary, self.owner.uid, self.owner.gid)  # the auth process reads it as that user
        stamp = int(time.time())
        with contextlib.suppress(FileNotFoundError):
            stamp = max(stamp, int(target.stat().st_mtime) + 1)
        os.utime(temporary, (stamp, stamp))
        temporary.replace(target)

    def _config_text(self) -> str:
        owner, root, data = self.owner, self.root, self.data_dir
        # Rootless Dovecot cannot chroot its login processes.
        chroot = "" if os.getuid() == 0 else "\n  chroot ="
        # No auth cache (also Dovecot's default, said here on purpose): a revoked or expired token must be
        # refused at the next login, which is what the OAuth2 tests check.  The oauth2 passdb comes first and
        # only for the token mechanisms; a token it refuses falls through to the passwd-file, which refuses too.
        oauth2_mechanisms = oauth2_passdb = ""
        if self.oauth2_settings is not None:
            oauth2_mechanisms = " xoauth2 oauthbearer"
            oauth2_passdb = (
                f"\npassdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {data}/dovecot-oauth2.conf.ext\n}}"
            )
        return f"""# written by archiver.devtools.sandbox; regenerated on every start
instance_name = archiver-sandbox-{self.imap_port}
protocols = imap pop3
listen = {LOCALHOST}
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_file}
default_internal_user = {owner.internal_user}
default_internal_group = {owner.internal_group}
default_login_user = {owner.login_user}
first_valid_uid = {owner.uid}
last_valid_uid = {owner.uid}
first_valid_gid = {owner.gid}
last_valid_gid = {owner.gid}
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
auth_failure_delay = 0
auth_cache_size = 0
auth_verbose = yes
mail_location = maildir:~/Maildir:LAYOUT=fs
mail_fsync = never
mail_max_userip_connections = 200
pop3_uidl_format = %08Xu%08Xv
login_greeting = archiver sandbox {self._token} ready.
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
}}{oauth2_passdb}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {data}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={owner.uid} gid={owner.gid} home={data}/home/%u
}}
service imap-login {{{chroot}
  inet_listener imap {{
    address = {LOCALHOST}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {LOCALHOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{{chroot}
  inet_listener pop3 {{
    address = {LOCALHOST}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    address = {LOCALHOST}
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
service anvil {{{chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    def _wait_until_ready(self) -> None:
        """Return once IMAP greets; else stop and raise with what Dovecot said."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                with socket.create_connection((self.host, self.imap_port), timeout=1) as conn:
                    if self._token.encode() in conn.recv(1000):
                        self._serving = True
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"Dovecot sandbox in {self.root} did not start:\n{self._log_tail()}")

    def _wait_until_port_closed(self) -> None:
        """After stop, wait until the listener is gone so a restart can bind the same ports."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.imap_port), timeout=0.2):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    def _log_tail(self, chars: int = 3000) -> str:
        parts = []
        for path in (self.root / "dovecot.stderr", self.log_file):
            if path.exists() and path.stat().st_size:
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts) or "(Dovecot wrote no log)"


def ensure_folder(client: imapclient.IMAPClient, folder: str) -> None:
    """Create ``folder`` and any missing parents (``/`` separated)."""
    if folder.upper() == "INBOX" or client.folder_exists(folder):
        return
    parts = folder.split("/")
    for depth in range(1, len(parts) + 1):
        name = "/".join(parts[:depth])
        if not client.folder_exists(name):
            client.create_folder(name)


def appended_uids(response: bytes | str) -> list[int]:
    """The UIDs from an APPEND response ``[APPENDUID <validity> <uid-set>]``, in append order."""
    text = response.decode(errors="replace") if isinstance(response, bytes) else response
    match = re.search(r"\[APPENDUID \d+ ([\d:,]+)\]", text)
    if match is None:
        raise RuntimeError(f"Dovecot sent no APPENDUID: {text!r}")
    uids: list[int] = []
    for part in match.group(1).split(","):
        first, _, last = part.partition(":")
        uids += range(int(first), int(last or first) + 1)
    return uids


def _multiappend(client: imapclient.IMAPClient, folder: str, batch: list[dict[str, object]]) -> list[int]:
    """One MULTIAPPEND; imapclient returns its raw (status, data) unchecked, so check it here."""
    status, data = client.multiappend(folder, batch)
    text = b" ".join(item for item in data if isinstance(item, bytes)).decode(errors="replace")
    if status != "OK":
        raise RuntimeError(f"APPEND to {folder!r} failed: {status} {text}")
    return appended_uids(text)


def _die_with_parent() -> list[str]:
    """A ``setpriv`` prefix that SIGTERMs Dovecot when our thread dies (a killed pytest leaves no server).

    setpriv execs Dovecot in place, so the Popen pid stays the master's pid.
    The "parent" is the starting thread: start sandboxes from a thread that
    outlives them (the main thread, as tests, demo and benchmarks do).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


def _traversable(path: Path, owner: MailOwner) -> bool:
    """Whether ``owner`` may search every directory from / down to ``path`` (a plain mode-bit check)."""
    for directory in [path, *path.parents]:
        if not directory.exists():
            continue
        info = directory.stat()
        if info.st_uid == owner.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == owner.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
