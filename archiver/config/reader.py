"""The strict reader under :mod:`archiver.config.load`: one TOML table at a time, typed, with key paths.

Every error names the file, the key path and what was expected versus found, e.g.
``config.toml: accounts[1].port: expected an integer from 1 to 65535, got "abc"``.  Array indexes
in key paths are 0-based, like Python lists: the first ``[[accounts]]`` table is ``accounts[0]``.
An unknown key is refused with the closest declared key suggested and the table's valid keys
listed.  A table's keys come from the schema the top table was opened with
(:data:`archiver.config.model.KEYS_BY_TABLE`), never from the caller, so what the reader accepts
and what the schema lists are one thing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from archiver.errors import ConfigError

_T = TypeVar("_T")


class Schema(NamedTuple):
    """The tables a document may hold: keys per dotted table path ("" is the top level), and which are arrays."""

    keys: Mapping[str, tuple[str, ...]]
    arrays: frozenset[str]


_MISSING: Any = object()


class Table:
    """One TOML table being validated: typed getters that know the key path and the declared keys.

    Unknown keys are reported as soon as the table is opened, before any
    cross-key check, because a typo ("pasword") is the likeliest cause of a
    later "no password given" and the suggestion is the more useful message.
    """

    def __init__(
        self, data: Mapping[str, Any], path: str, prefix: str, label: str, base_dir: Path, schema: Schema
    ) -> None:
        self.data = data
        self.table_path = path  # dotted, without array indexes: the schema's name for this table
        self.prefix = prefix  # the key path shown in messages, with array indexes
        self.label = label
        self.base_dir = base_dir
        self.schema = schema
        self.keys = schema.keys[path]
        self._check_unknown()

    @classmethod
    def top(cls, data: Mapping[str, Any], label: str, base_dir: Path, schema: Schema) -> Table:
        """The whole document; ``label`` (the file name) starts every message, relative paths use ``base_dir``."""
        return cls(data, "", "", label, base_dir, schema)

    def key_path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix and key else self.prefix or key

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {self.key_path(key) or '(top level)'}: {message}")

    def error(self, key: str, expected: str, value: Any, *, secret: bool = False) -> ConfigError:
        return self.fail(key, f"expected {expected}, got {describe(value, secret)}")

    def missing(self, key: str, expected: str) -> ConfigError:
        return self.fail(key, f"missing required key (expected {expected})")

    def has(self, key: str) -> bool:
        assert key in self.keys, f"undeclared key {key!r}"
        return key in self.data

    def _get(self, key: str, required: bool, expected: str) -> Any:
        if not self.has(key):
            if required:
                raise self.missing(key, expected)
            return _MISSING
        return self.data[key]

    def string(
        self, key: str, default: str | None = None, *, required: bool = False, secret: bool = False
    ) -> str | None:
        value = self._get(key, required, "a string")
        if value is _MISSING:
            return default
        if not isinstance(value, str) or not value:
            raise self.error(key, "a non-empty string", value, secret=secret)
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str = "", *, required: bool = False) -> str:
        expected = "one of " + ", ".join(json.dumps(o) for o in options)
        value = self._get(key, required, expected)
        if value is _MISSING:
            return default
        if value not in options:
            close = get_close_matches(str(value), options, n=1)
            hint = f"; did you mean {json.dumps(close[0])}?" if close else ""
            raise self.fail(key, f"expected {expected}, got {describe(value)}{hint}")
        return value

    def integer(self, key: str, default: _T, *, low: int | None = None, high: int | None = None) -> int | _T:
        if high is not None:
            expected = f"an integer from {low} to {high}"
        else:
            expected = f"an integer of at least {low}" if low is not None else "an integer"
        value = self._get(key, False, expected)
        if value is _MISSING:
            return default
        # bool is a subclass of int: TOML `port = true` must not become port 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, expected, value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, expected, value)
        return value

    def number(self, key: str, default: float) -> float:
        expected = "a number greater than 0"
        value = self._get(key, False, expected)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise self.error(key, expected, value)
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False, "true or false")
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def path(self, key: str, *, required: bool = False, must_exist: bool = False) -> Path | None:
        """A path: ``~`` expanded, relative paths taken relative to the config file's directory."""
        raw = self.string(key, required=required)
        if raw is None:
            return None
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        if must_exist and not path.is_file():
            raise self.fail(key, f"expected an existing file, got {json.dumps(raw)} ({path} does not exist)")
        return path

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key, False, "an array of strings")
        if value is _MISSING:
            return default
        if not isinstance(value, list):
            raise self.error(key, "an array of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{key}[{index}]", "a non-empty string", item)
        return tuple(value)

    def table(self, key: str, *, required: bool = False) -> Table | None:
        path = self._child(key, array=False)
        value = self._get(key, required, f"a table [{self.key_path(key)}]")
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"a table [{self.key_path(key)}]", value)
        return Table(value, path, self.key_path(key), self.label, self.base_dir, self.schema)

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``); each element's path is ``key[i]``, 0-based."""
        path = self._child(key, array=True)
        expected = f"an array of tables [[{self.key_path(key)}]]"
        value = self._get(key, False, expected)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, expected, value)
        return [
            Table(item, path, f"{self.key_path(key)}[{i}]", self.label, self.base_dir, self.schema)
            for i, item in enumerate(value)
        ]

    def _child(self, key: str, array: bool) -> str:
        path = f"{self.table_path}.{key}" if self.table_path else key
        assert path in self.schema.keys, f"table {path!r} is not in the schema"
        assert (path in self.schema.arrays) == array, f"table {path!r}: array of tables is {not array} in the schema"
        return path

    def _check_unknown(self) -> None:
        unknown = [key for key in self.data if key not in self.keys]
        if not unknown:
            return
        problems = []
        for key in unknown:
            close = get_close_matches(key, self.keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{self.key_path(key)}: unknown key{hint}")
        where = f" in [{self.prefix}]" if self.prefix else " at the top level"
        raise ConfigError(f"{self.label}: {', '.join(problems)}; valid keys{where}: {', '.join(self.keys)}")


def describe(value: Any, secret: bool = False) -> str:
    """A found value as the user wrote it in TOML; for secrets only its type."""
    if isinstance(value, bool):
        return "a boolean" if secret else str(value).lower()
    if isinstance(value, int | float):
        return "a number" if secret else repr(value)
    if isinstance(value, str):
        if secret:
            return "an empty string" if not value else "a string"
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, list):
        return "an empty array" if not value else "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}" if secret else f"a date/time ({value.isoformat()})"


def get_close_matches(word: str, options: Any, n: int) -> list[str]:
    """``difflib.get_close_matches``, imported when a typo needs a suggestion, not at every config load."""
    import difflib

    return difflib.get_close_matches(word, options, n=n)
