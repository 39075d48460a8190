"""An ``[[accounts]]`` table for discovered settings, as TOML text (appended by :mod:`archiver.config.append`).

Text, not re-serialised TOML: it is appended to a file the operator wrote, whose comments and
layout must stay as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from archiver.discovery.model import Discovery, split_address
from archiver.discovery.presets import PRESETS

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class AccountEntry:
    """What goes into the table besides the discovered server: name and where the secret comes from.

    ``secret`` is one ``(key, value)`` such as ``("password_command", "pass show mail")`` or
    ``("password_file", "bob.password")``, or None (OAuth2 accounts); ``extra`` are further
    ``(key, value)`` pairs (``tls_ca_file``, ``oauth2_client_id``…), written in order.
    """

    name: str
    secret: tuple[str, str] | None = None
    auth: str | None = None  # "password" to override an OAuth2 preset (an app password)
    extra: tuple[tuple[str, object], ...] = ()


def default_name(email: str) -> str:
    """An account name from an address: ``bob@example.org`` → ``bob-example.org`` (names allow ``[A-Za-z0-9._-]``)."""
    local, domain = split_address(email)
    return _NOT_IN_NAME.sub("-", f"{local}-{domain}").strip("-.") or "account"


def render_account(discovery: Discovery, entry: AccountEntry) -> str:
    """The ``[[accounts]]`` table, preceded by a comment saying where its settings came from.

    With a preset only ``provider`` and what differs from it are written, so a provider moving
    a server is followed by editing one table in this project, not every config.
    """
    server = discovery.server
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"# Added by `archiver account add` on {stamp}; settings from {_comment(discovery.origin)}.",
        "[[accounts]]",
        f"name = {_toml(entry.name)}",
        f"protocol = {_toml(server.protocol)}",
    ]
    preset = PRESETS.get(discovery.preset or "")
    if preset is not None:
        lines.insert(3, f"provider = {_toml(preset.name)}")
        if entry.auth and entry.auth != preset.auth:
            lines.append(f"auth = {_toml(entry.auth)}")
    else:
        lines += [f"host = {_toml(server.host)}", f"port = {server.port}", f"security = {_toml(server.security)}"]
        if (entry.auth or server.auth) == "oauth2":
            lines.append('auth = "oauth2"')
            if server.oauth2_provider:
                lines.append(f"oauth2_provider = {_toml(server.oauth2_provider)}")
    lines.append(f"username = {_toml(server.username)}")
    for key, value in ((entry.secret,) if entry.secret else ()) + entry.extra:
        lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    """A TOML value: JSON's string escapes are valid TOML basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())
