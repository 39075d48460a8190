"""Read a secret from a file or a command's output, bounded in size and time.

Why bounded: a secret is a few hundred bytes at most, but the places it comes from are
chosen by an operator and can be anything: ``password_file = "/dev/zero"`` or a
command that prints forever used to grow memory until a MemoryError traceback,
and a FIFO with no writer blocked the run for ever.  Here a file must be a
regular file (checked with ``fstat`` on a descriptor opened ``O_NONBLOCK``, so
opening a FIFO cannot block), and both readers stop at :data:`SECRET_MAX_BYTES`.
Every failure is a :class:`SecretError` starting with the caller's ``where``;
no message ever contains what was read.
"""

from __future__ import annotations

import os
import selectors
import stat
import subprocess
import time
from pathlib import Path

from archiver.errors import SecretError

SECRET_MAX_BYTES = 64 * 1024
_STDERR_TAIL = 4096  # the last bytes of a failing command's stderr, for its last line


def read_secret_file(path: Path, where: str) -> bytes:
    """The bytes of a regular file of at most :data:`SECRET_MAX_BYTES`; never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind != "regular file":
            raise SecretError(f"{where}: {path} is a {kind}, not a regular file")
        data = _read_up_to(fd, SECRET_MAX_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > SECRET_MAX_BYTES:
        raise SecretError(f"{where}: {path} is larger than {SECRET_MAX_BYTES // 1024} KiB; it should hold a password")
    return data


def run_secret_command(argv: list[str], where: str, timeout: float) -> bytes:
    """The stdout of ``argv`` (stdin empty), at most :data:`SECRET_MAX_BYTES`, within ``timeout`` seconds.

    The command is killed as soon as it prints too much or runs too long.  A
    non-zero exit is reported with the last line of its stderr (gpg and pass
    say why there), never with its stdout, which may hold the secret.
    """
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise SecretError(f"{where}: not found (use an absolute path or a program on PATH)") from None
    except OSError as exc:
        raise SecretError(f"{where}: cannot run it: {exc.strerror or exc}") from None
    assert child.stdout is not None and child.stderr is not None
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    problem = None
    with child, selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ, out)
        selector.register(child.stderr, selectors.EVENT_READ, err)
        while selector.get_map() and problem is None:
            left = deadline - time.monotonic()
            if left <= 0:
                problem = f"did not finish within {timeout:g} s"
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                buffer.extend(chunk)
                if buffer is err:
                    del err[:-_STDERR_TAIL]
                elif len(out) > SECRET_MAX_BYTES:
                    problem = f"printed more than {SECRET_MAX_BYTES // 1024} KiB; it should print a password"
        if problem is None:
            try:
                child.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:  # closed its output but lingers
                problem = f"did not finish within {timeout:g} s"
        if problem is not None:
            child.kill()
            child.wait()
            raise SecretError(f"{where}: {problem}")
    if child.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        detail = f": {lines[-1][:200]}" if lines else ""
        raise SecretError(f"{where}: failed with exit code {child.returncode}{detail}")
    return bytes(out)


def _read_up_to(fd: int, limit: int) -> bytes:
    parts, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "regular file"
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "named pipe (FIFO)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"
