"""Recognise a server saying "not now": throttling (Microsoft 365) and a download quota (Gmail).

These answers are not faults of the server nor of the account, and each calls for
its own reaction, decided by the backup run (:mod:`archiver.backup.throttle`):

* **throttled**: the server refuses work for a while because the client is too busy.
  Microsoft 365 answers ``NO [THROTTLED] ...``, or ``NO``/``BAD`` with "Request is
  throttled" or "Server Unavailable. 15" (that 15 is an error code, not seconds); any
  server may use ``[UNAVAILABLE]`` (RFC 5530) or hang up with ``* BYE ... throttled``.
  Waiting and asking again works.
* **quota**: the account has used its download allowance (Gmail: ``[OVERQUOTA]``,
  ``[ALERT] Account exceeded command or bandwidth limits``, ``BYE ... bandwidth
  limits``).  Every further command fails too until the allowance resets (a day
  for Gmail): asking again only makes it worse.

:func:`classify` is pure and total: any text (bytes or str, any length) gives a
:class:`ServerLimit` or None, never an exception.  A quota sign wins over a
throttling one, since retrying a quota is pointless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from archiver.discovery.presets import PRESETS, Preset
from archiver.errors import QuotaReached, Throttled

MAX_REASON = 160  # characters of the server's words kept in a line
MAX_SCANNED = 4096  # a refusal is one short line; a longer text is read only this far
MAX_HINT = 24 * 3600.0  # seconds: a bigger "retry after" is nonsense, read as absent

_QUOTA = re.compile(
    r"\[OVERQUOTA\]|exceeded\s+(?:the\s+)?(?:command\s+or\s+)?bandwidth\s+limit|bandwidth\s+limits?\s+exceeded"
    r"|download\s+(?:quota|limit)\s+(?:exceeded|reached)",
    re.IGNORECASE,
)
_THROTTLED = re.compile(
    r"\[THROTTLED\]|\[UNAVAILABLE\]|\bthrottl(?:ed|ing)\b|server\s+unavailable|too\s+many\s+requests",
    re.IGNORECASE,
)
# "retry after 30 seconds", "try again in 2 minutes", "Suggested Backoff Time: 1500 milliseconds", "Retry-After: 20"
_HINT = re.compile(
    r"(?:retry[\s-]*after|try\s+again\s+in|back[\s-]?off(?:\s+time)?|wait)\s*[:=]?\s*"
    r"(\d{1,9}(?:\.\d{1,3})?)\s*(ms|millisecond|milliseconds|s|sec|secs|second|seconds|min|mins|minute|minutes)?\b",
    re.IGNORECASE,
)
_CLIENT_PREFIX = re.compile(r"^(?:[A-Za-z]+ failed: |[A-Z]+ command error: )")
_IMAPLIB_WRAPPED = re.compile(r"""(?:BAD|NO) \[b['"](.*)['"]\]""")
_UNIT_SECONDS = {"ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001, "min": 60.0, "mins": 60.0}
_UNIT_SECONDS |= {"minute": 60.0, "minutes": 60.0}


@dataclass(frozen=True)
class ServerLimit:
    """What a refusal means: its kind, the server's words (one line, trimmed), a "retry after" hint in seconds."""

    kind: Literal["throttled", "quota"]
    reason: str
    retry_after: float | None = None


def classify(text: str | bytes) -> ServerLimit | None:
    """The limit a server's answer (a tagged NO/BAD, a BYE, a greeting) reports, or None for any other answer."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text[:MAX_SCANNED]
    reason = _server_words(" ".join(text.split()))[:MAX_REASON] or "no reason given"
    if _QUOTA.search(text):
        return ServerLimit("quota", reason)
    if _THROTTLED.search(text):
        return ServerLimit("throttled", reason, retry_after(text))
    return None


def _server_words(text: str) -> str:
    """The server's own words, without what imapclient ("fetch failed: ") or imaplib ("BAD [b'…']") wrapped them in."""
    text = _CLIENT_PREFIX.sub("", text)
    wrapped = _IMAPLIB_WRAPPED.fullmatch(text)
    return wrapped.group(1) if wrapped else text


def retry_after(text: str) -> float | None:
    """The wait a server asks for, in seconds ("retry after 30 seconds" → 30.0); None when it names none."""
    match = _HINT.search(text[:MAX_SCANNED])
    if match is None:
        return None
    seconds = float(match.group(1)) * _UNIT_SECONDS.get((match.group(2) or "s").lower(), 1.0)
    return seconds if seconds <= MAX_HINT else None


def provider_preset(provider: str | None) -> Preset | None:
    """The account's preset (``provider = ...``), which says whose limits these are; None without one."""
    return None if provider is None else PRESETS.get(provider)


def limit_error(
    where: str, what: str, text: str | bytes, provider: str | None = None
) -> Throttled | QuotaReached | None:
    """The project's error for a refusal that is a limit (None otherwise): one line, the server's words quoted.

    ``where`` is the source's "account: host:port", ``what`` the command ("UID FETCH BODY.PEEK[]").
    """
    limit = classify(text)
    if limit is None:
        return None
    context = f"{where}: {what}" if what else where
    if limit.kind == "quota":
        return QuotaReached(
            f"{context}: {quota_name(provider)} was reached (the server said: {limit.reason}); stopped at once: "
            "what is archived is kept, and the next run resumes without downloading it again"
        )
    return Throttled(f"{context}: the server is throttling ({limit.reason})", limit.retry_after, limit.reason)


def quota_name(provider: str | None) -> str:
    """ "Gmail's daily download quota" for a provider known to have one, else the server's download limit."""
    preset = provider_preset(provider)
    if preset is not None and preset.quirks.daily_download_quota:
        return f"{preset.label.split(' /')[0]}'s daily download quota"
    return "the server's download quota"


def throttling_owner(provider: str | None) -> str:
    """Who limits the account, for the line that ends a throttled run: "Microsoft 365 limits ..." or the server."""
    preset = provider_preset(provider)
    if preset is not None and preset.quirks.throttling:
        return f"{preset.label.split(' /')[0]} limits how many requests a mailbox may make in a while"
    return "the server limits how busy a client may be"


__all__ = ["ServerLimit", "classify", "limit_error", "quota_name", "retry_after", "throttling_owner"]
