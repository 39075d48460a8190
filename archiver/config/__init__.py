"""The configuration: ``config.toml`` loaded, validated and typed; secrets resolved late.

* :mod:`archiver.config.model`: the frozen dataclasses and :data:`KEYS_BY_TABLE`, every table and key;
* :mod:`archiver.config.reader`: the strict table reader (key paths, did-you-mean, type checks);
* :mod:`archiver.config.load`: finding the file and reading each table into the model;
* :mod:`archiver.config.secrets`: :class:`PasswordSource` and bounded reads of secret files and commands;
* :mod:`archiver.config.oauth`: the OAuth2 keys of an account and the token source they describe.
* :mod:`archiver.config.storage`: ``[archive] store = "s3://…"``, where the blobs live and how to log in there;
* :mod:`archiver.config.provider`: ``provider = "NAME"``, a preset's defaults for an account's keys;
* :mod:`archiver.config.append`: appending an ``[[accounts]]`` table to the file, as text (``archiver account add``).

The public names are re-exported here: callers write ``from archiver.config import Config``.
"""

from archiver.config.load import config_from_toml_text, find_config_path, load_config
from archiver.config.model import (
    ARRAY_TABLES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_PORTS,
    INDEX_UPDATES,
    KEYS_BY_TABLE,
    MIN_INDEX_MEMORY_MB,
    POP3_AUTH_MODES,
    PROTOCOLS,
    SECURITY_MODES,
    AccountConfig,
    AlertsConfig,
    ArchiveConfig,
    Config,
    EmailAlertConfig,
    FolderFilter,
    IndexConfig,
    MetricsConfig,
    SchedulerConfig,
    WebConfig,
    WebUser,
)
from archiver.config.oauth import OAuthConfig
from archiver.config.secrets import PASSWORD_KEYS, PasswordSource
from archiver.config.storage import S3Location

__all__ = [
    "ARRAY_TABLES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_PORTS",
    "INDEX_UPDATES",
    "KEYS_BY_TABLE",
    "MIN_INDEX_MEMORY_MB",
    "PASSWORD_KEYS",
    "POP3_AUTH_MODES",
    "PROTOCOLS",
    "SECURITY_MODES",
    "AccountConfig",
    "AlertsConfig",
    "ArchiveConfig",
    "Config",
    "EmailAlertConfig",
    "FolderFilter",
    "IndexConfig",
    "MetricsConfig",
    "OAuthConfig",
    "PasswordSource",
    "S3Location",
    "SchedulerConfig",
    "WebConfig",
    "WebUser",
    "config_from_toml_text",
    "find_config_path",
    "load_config",
]
