"""The archive's encryption key: made once, kept wrapped in ``keys.json``, unlocked by a passphrase or a key file.

Key hierarchy (docs/encryption.md)::

    passphrase ──Argon2id(salt, cost)──┐
    key file ────HKDF-SHA256(salt)─────┴─► key-encryption key ──AES-256-GCM unwrap──► data key (32 random bytes)
    data key ──HMAC-SHA256("archiver content key")──► content key  (seals blobs, dictionaries, snapshots)
    data key ──HMAC-SHA256("archiver name key")─────► name key     (object name = HMAC-SHA256(name key, blob id))

The data key never changes (every object is sealed under keys derived from it),
so a rotation re-wraps it under a new passphrase or key file and rewrites
``keys.json`` alone, atomically: the old passphrase stops working at once and
no blob is touched.  The wrapping is authenticated (its GCM tag is the key
check), with the file's format and KDF parameters as associated data, so a
wrong passphrase, a wrong key file or an edited ``keys.json`` is one
:class:`~archiver.errors.ArchiveKeyError` raised before anything is written.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from archiver.config import ArchiveConfig
from archiver.errors import ArchiveKeyError
from archiver.store.sealing import aes_gcm

KEY_FILE_NAME = "keys.json"
FORMAT = "archiver-keys"
VERSION = 1
MIN_PASSPHRASE = 12
"""Characters a new passphrase needs (``key init``, ``key rotate``): Argon2id slows guessing, it cannot stop it."""
MIN_KEY_FILE_BYTES = 32
"""A key file must hold at least 256 bits' worth of bytes (``archiver key init --generate-key-file`` writes one)."""

SecretKind = Literal["passphrase", "key_file"]


@dataclass(frozen=True)
class KdfCost:
    """Argon2id's cost for a passphrase, recorded in ``keys.json`` so later versions can raise the default.

    The default is RFC 9106's second recommended setting (64 MiB, 3 passes, 4 lanes): about half a
    second on a small appliance, paid once per process that opens the archive.
    """

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4


DEFAULT_COST = KdfCost()


@dataclass(frozen=True, repr=False)
class KeySecret:
    """What unlocks the data key: a passphrase or the bytes of a key file; ``origin`` names it in messages."""

    kind: SecretKind
    material: bytes
    origin: str

    def __repr__(self) -> str:
        return f"KeySecret({self.kind}, {self.origin!r})"


class ArchiveKey:
    """The unwrapped data key's two working keys; picklable, so index worker processes get it, never printed."""

    def __init__(self, data_key: bytes) -> None:
        self.content_key = _subkey(data_key, "content key")
        self._name_key = _subkey(data_key, "name key")
        self.key_id = _subkey(data_key, "key id")[:8].hex()

    def object_name(self, blob_id: str) -> str:
        """The name a blob is stored under: keyed, so it tells nothing of the content; fixed, so dedup still works."""
        return hmac.new(self._name_key, bytes.fromhex(blob_id), "sha256").hexdigest()

    def __repr__(self) -> str:
        return f"ArchiveKey(key_id={self.key_id})"


def _subkey(data_key: bytes, purpose: str) -> bytes:
    return hmac.digest(data_key, b"archiver " + purpose.encode("ascii"), "sha256")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise ArchiveKeyError(f"{what} is damaged: a field is not base64") from None


# -- secrets ---------------------------------------------------------------------------------------


def secret_from_config(settings: ArchiveConfig) -> KeySecret:
    """The configured passphrase or key file, fetched now (files, commands and variables are read late)."""
    source = settings.passphrase
    if source is not None:
        passphrase = source.resolve()  # registered with archiver.logs: masked in every log line
        origin = f"{source.key} {source.file}" if source.kind == "file" else source.key
        return passphrase_secret(passphrase, origin or "[archive] passphrase")
    if settings.key_file is not None:
        return key_file_secret(settings.key_file, "[archive] key_file")
    raise ArchiveKeyError("[archive] encryption = true needs a passphrase (or passphrase_file, …) or a key_file")


def key_file_secret(path: Path, where: str) -> KeySecret:
    """A key file's bytes (one trailing newline dropped, so a text key file may be edited by hand)."""
    from archiver.secret_io import read_secret_file  # subprocess: only for an encrypted archive's key file

    data = read_secret_file(path, where)
    data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    if len(data) < MIN_KEY_FILE_BYTES:
        raise ArchiveKeyError(
            f"{where}: {path} holds {len(data)} bytes, a key file needs at least {MIN_KEY_FILE_BYTES} random bytes "
            "(archiver key init --generate-key-file writes one)"
        )
    return KeySecret("key_file", data, f"key_file {path}")


def passphrase_secret(passphrase: str, origin: str) -> KeySecret:
    return KeySecret("passphrase", passphrase.encode("utf-8"), origin)


def check_new_secret(secret: KeySecret) -> None:
    """Refuse a new passphrase too short to protect the archive (an existing one is never judged again)."""
    if secret.kind == "passphrase" and len(secret.material.decode("utf-8")) < MIN_PASSPHRASE:
        raise ArchiveKeyError(f"{secret.origin}: a passphrase needs at least {MIN_PASSPHRASE} characters")


def generate_key_file(path: Path) -> None:
    """Write a new key file (256 random bits as base64 text, owner-only); never over an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ArchiveKeyError(f"{path} exists already: not overwriting a key file") from None
    except OSError as exc:
        raise ArchiveKeyError(f"cannot create the key file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(os.urandom(32)) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


# -- the key file ----------------------------------------------------------------------------------


def key_file_path(root: Path) -> Path:
    return Path(root) / KEY_FILE_NAME


def read_key_file(root: Path) -> dict[str, Any] | None:
    """The parsed ``keys.json`` of the archive at ``root``; None when there is none (an unencrypted archive)."""
    path = key_file_path(root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchiveKeyError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ArchiveKeyError(f"{path} is damaged: not JSON (restore it from your copy of the key file)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchiveKeyError(f"{path} is not an archiver key file")
    if data.get("version") != VERSION:
        raise ArchiveKeyError(f"{path} has format version {data.get('version')!r}: made by a newer archiver")
    return data


def _kek(secret: KeySecret, protection: dict[str, Any], where: str) -> bytes:
    if protection.get("kind") != secret.kind:
        wanted = "a passphrase" if protection.get("kind") == "passphrase" else "a key file"
        raise ArchiveKeyError(f"{where} is protected by {wanted}, the config gives {secret.origin}")
    salt = _unb64(protection.get("salt"), where)
    if secret.kind == "passphrase":
        try:
            cost = KdfCost(int(protection["memory_kib"]), int(protection["iterations"]), int(protection["lanes"]))
        except (KeyError, TypeError, ValueError):
            raise ArchiveKeyError(f"{where} is damaged: its Argon2id parameters are missing") from None
        return _argon2id(secret.material, salt, cost)
    from cryptography.hazmat.primitives import hashes  # see aes_gcm: only an encrypted archive needs cryptography
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), 32, salt=salt, info=b"archiver key file").derive(secret.material)


@functools.lru_cache(maxsize=4)
def _argon2id(material: bytes, salt: bytes, cost: KdfCost) -> bytes:
    """Argon2id, cached: a daemon opening the archive for every run pays it once, not per run."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    try:
        kdf = Argon2id(salt=salt, length=32, iterations=cost.iterations, lanes=cost.lanes, memory_cost=cost.memory_kib)
        return kdf.derive(material)
    except (ValueError, MemoryError) as exc:
        raise ArchiveKeyError(f"cannot derive the key with Argon2id ({cost}): {exc}") from None


def _wrapping_aad(data: dict[str, Any]) -> bytes:
    """What the wrapped key is bound to: the format and how the key-encryption key is derived."""
    bound = {"format": data["format"], "version": data["version"], "protection": data["protection"]}
    return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _wrap(data_key: bytes, secret: KeySecret, cost: KdfCost) -> dict[str, Any]:
    salt = os.urandom(16)
    protection: dict[str, Any] = {"kind": secret.kind, "salt": _b64(salt)}
    if secret.kind == "passphrase":
        protection |= {"kdf": "argon2id", **asdict(cost)}
    else:
        protection |= {"kdf": "hkdf-sha256"}
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "protection": protection}
    kek = _kek(secret, protection, KEY_FILE_NAME)
    nonce = os.urandom(12)
    data["wrapped_key"] = _b64(nonce + aes_gcm(kek).encrypt(nonce, data_key, _wrapping_aad(data)))
    return data


def _unwrap(data: dict[str, Any], secret: KeySecret, where: str) -> bytes:
    protection = data.get("protection")
    if not isinstance(protection, dict) or "wrapped_key" not in data:
        raise ArchiveKeyError(f"{where} is damaged: no wrapped key")
    kek = _kek(secret, protection, where)
    wrapped = _unb64(data["wrapped_key"], where)
    from cryptography.exceptions import InvalidTag

    try:
        data_key = aes_gcm(kek).decrypt(wrapped[:12], wrapped[12:], _wrapping_aad(data))
    except InvalidTag:
        raise ArchiveKeyError(
            f"{secret.origin} does not unlock {where}: wrong {'passphrase' if secret.kind == 'passphrase' else 'key'}"
            " (nothing was read or written)"
        ) from None
    if len(data_key) != 32 or ArchiveKey(data_key).key_id != data.get("key_id"):
        raise ArchiveKeyError(f"{where} is damaged: the key it holds is not the one it names")
    return data_key


def _write_key_file(root: Path, data: dict[str, Any], file_mode: int) -> None:
    """Replace ``keys.json`` atomically and durably: a crash leaves the old file or the new one, never half."""
    final = key_file_path(root)
    temp = final.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.tmp")
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        dir_fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ArchiveKeyError(f"cannot write {final}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _key_file_lock(root: Path) -> Iterator[None]:
    """Hold the archive's key-file lock: two ``key init`` or ``key rotate`` at once must not lose one's secret."""
    locks = Path(root) / "locks"
    try:
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / "keys.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ArchiveKeyError(f"cannot lock {locks / 'keys.lock'}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for a second at most: waiting is right
        yield
    finally:
        os.close(fd)


def create_key_file(root: Path, secret: KeySecret, cost: KdfCost = DEFAULT_COST, file_mode: int = 0o600) -> ArchiveKey:
    """Make the archive's data key and write it, wrapped, to ``keys.json``; refused when one exists."""
    with _key_file_lock(root):
        return _create_key_file(root, secret, cost, file_mode)


def _create_key_file(root: Path, secret: KeySecret, cost: KdfCost, file_mode: int) -> ArchiveKey:
    if key_file_path(root).exists():
        raise ArchiveKeyError(f"{key_file_path(root)} exists already: this archive has its key (see key rotate)")
    data_key = os.urandom(32)
    key = ArchiveKey(data_key)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    data = {**_wrap(data_key, secret, cost), "key_id": key.key_id, "cipher": "AES-256-GCM", "created": stamp}
    data["names"] = "HMAC-SHA256"
    _write_key_file(root, data, file_mode)
    return key


def install_key_file(root: Path, text: bytes, where: str, file_mode: int = 0o600) -> None:
    """Write ``keys.json`` from a copy (the bucket's, on a new machine); refused when the archive has one.

    The copy is checked to be an archiver key file first; whether it opens is :func:`unlock`'s business.
    """
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ArchiveKeyError(f"the {KEY_FILE_NAME} in {where} is damaged: not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ArchiveKeyError(f"the {KEY_FILE_NAME} in {where} is not an archiver key file this version reads")
    with _key_file_lock(root):
        if key_file_path(root).exists():
            raise ArchiveKeyError(f"{key_file_path(root)} exists already")
        _write_key_file(root, data, file_mode)


def unlock(root: Path, secret: KeySecret) -> ArchiveKey:
    """The archive's key, unwrapped with ``secret``; ArchiveKeyError when there is no key file or it does not open."""
    data = read_key_file(root)
    if data is None:
        raise ArchiveKeyError(f"{root} has no {KEY_FILE_NAME}: run `archiver key init` to encrypt a new archive")
    return ArchiveKey(_unwrap(data, secret, str(key_file_path(root))))


def rotate(
    root: Path, old: KeySecret, new: KeySecret, cost: KdfCost = DEFAULT_COST, file_mode: int = 0o600
) -> ArchiveKey:
    """Re-wrap the data key under ``new``; checked with ``old`` first, so a wrong old secret changes nothing."""
    with _key_file_lock(root):
        return _rotate(root, old, new, cost, file_mode)


def _rotate(root: Path, old: KeySecret, new: KeySecret, cost: KdfCost, file_mode: int) -> ArchiveKey:
    data = read_key_file(root)
    if data is None:
        raise ArchiveKeyError(f"{root} has no {KEY_FILE_NAME}: nothing to rotate")
    data_key = _unwrap(data, old, str(key_file_path(root)))
    rewrapped = _wrap(data_key, new, cost)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    _write_key_file(root, {**data, **rewrapped, "rotated": stamp}, file_mode)
    return ArchiveKey(data_key)
