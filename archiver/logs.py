"""Logging: one line per event on stderr (the journal under systemd), secrets masked.

Every password we resolve is registered here, and a filter replaces it with
``***`` in any record, whatever code logged it, so a server echoing a command
or a library logging its arguments cannot leak it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

# Longest first: a secret that contains another ("pw-very-secret-9" and "secret") must be masked whole,
# not left as "pw-very-***-9" with most of it readable.
_secrets: tuple[str, ...] = ()
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask ``value`` in every later log line (short values are ignored: too many false hits)."""
    global _secrets
    if value and len(value) >= 4:
        with _lock:
            if value not in _secrets:
                _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class SecretFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = mask(record.getMessage())
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``--log-format json``), for log shippers; the message is already masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the ``archiver`` loggers once; library chatter stays at WARNING.

    ``fmt`` is ``"text"`` (``time LEVEL logger: message``) or ``"json"``.
    """
    handler = logging.StreamHandler(sys.stderr)
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter() if fmt == "json" else text)
    handler.addFilter(SecretFilter())
    root = logging.getLogger("archiver")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for noisy in ("imapclient", "apscheduler", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
