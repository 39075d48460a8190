"""Config loading: the contract users see is the error messages, so most tests assert on them."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import pytest

from archiver.config import (
    ARRAY_TABLES,
    KEYS_BY_TABLE,
    PASSWORD_KEYS,
    AccountConfig,
    Config,
    FolderFilter,
    PasswordSource,
    config_from_toml_text,
    find_config_path,
    load_config,
)
from archiver.config import load as config_load
from archiver.config import secrets as config_secrets
from archiver.errors import ConfigError, SecretError

SOURCE = Path("/srv/archiver/config.toml")

MINIMAL = """
[archive]
path = "/var/lib/archiver"

[[accounts]]
name = "work"
protocol = "imap"
host = "mail.example.org"
username = "alice"
password = "hunter2-literal"
"""


def parse(text: str, source: Path = SOURCE) -> Config:
    return config_from_toml_text(text, source)


def error_of(text: str, source: Path = SOURCE) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, source)
    return str(info.value)


def with_account(**lines: str) -> str:
    """MINIMAL with account keys replaced or added; a value of None-like "" removes the key."""
    base = {
        "name": '"work"',
        "protocol": '"imap"',
        "host": '"mail.example.org"',
        "username": '"alice"',
        "password": '"hunter2-literal"',
    }
    base.update(lines)
    body = "\n".join(f"{k} = {v}" for k, v in base.items() if v != "")
    return f'[archive]\npath = "/var/lib/archiver"\n\n[[accounts]]\n{body}\n'


# -- valid configs and defaults ------------------------------------------------------------------


def test_full_config(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("dummy")
    text = f"""
[archive]
path = "archive"
compression_level = 19
batch_bytes = 1048576
batch_messages = 50

[[accounts]]
name = "work.alice_1-x"
protocol = "imap"
host = "imap.example.org"
port = 10993
security = "starttls"
username = "alice@example.org"
password_env = "WORK_PW"
tls_ca_file = "{ca}"
tls_verify = false
timeout = 12.5
schedule = "hourly"

[accounts.folders]
include = ["INBOX", "Work/*"]
exclude = ["Work/Trash"]

[[accounts]]
name = "pop"
protocol = "pop3"
host = "pop.example.org"
username = "bob"
password_command = "pass show mail/bob"

[[accounts]]
name = "old-mbox"
protocol = "local"
"""
    config = parse(text, tmp_path / "config.toml")
    assert config.source == tmp_path / "config.toml"
    assert config.archive.path == tmp_path / "archive"
    assert (config.archive.compression_level, config.archive.batch_bytes, config.archive.batch_messages) == (
        19,
        1048576,
        50,
    )
    work, pop, local = config.accounts
    assert work == AccountConfig(
        name="work.alice_1-x",
        protocol="imap",
        host="imap.example.org",
        port=10993,
        security="starttls",
        username="alice@example.org",
        password=PasswordSource("env", env="WORK_PW", account="work.alice_1-x", key="accounts[0].password_env"),
        tls_ca_file=ca,
        tls_verify=False,
        timeout=12.5,
        folders=FolderFilter(include=("INBOX", "Work/*"), exclude=("Work/Trash",)),
        schedule="hourly",
    )
    assert pop.port == 995 and pop.security == "tls"
    assert pop.password is not None and pop.password.kind == "command"
    assert pop.password.command == "pass show mail/bob"
    assert (local.host, local.port, local.username, local.password) == (None, None, None, None)
    assert config.account("pop") is pop
    assert config.warnings == ()


def test_defaults() -> None:
    config = parse(MINIMAL)
    assert config.archive.compression_level == 3
    assert config.archive.batch_bytes == 8 * 2**20
    assert config.archive.batch_messages == 500
    (account,) = config.accounts
    assert account.security == "tls" and account.port == 993
    assert account.tls_verify is True and account.tls_ca_file is None
    assert account.timeout == 60.0 and isinstance(account.timeout, float)
    assert account.folders == FolderFilter(("*",), ())
    assert account.schedule is None


@pytest.mark.parametrize(
    ("protocol", "security", "port"),
    [
        ("imap", "tls", 993),
        ("imap", "starttls", 143),
        ("imap", "none", 143),
        ("pop3", "tls", 995),
        ("pop3", "starttls", 110),
        ("pop3", "none", 110),
    ],
)
def test_default_ports(protocol: str, security: str, port: int) -> None:
    config = parse(with_account(protocol=f'"{protocol}"', security=f'"{security}"'))
    assert config.accounts[0].port == port


def test_no_accounts_is_allowed() -> None:
    assert parse('[archive]\npath = "/a"\n').accounts == ()


def test_paths_relative_to_config_dir_and_home_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse('[archive]\npath = "data/archive"\n', tmp_path / "etc" / "c.toml").archive.path == (
        tmp_path / "etc" / "data" / "archive"
    )
    assert parse('[archive]\npath = "~/archive"\n').archive.path == tmp_path / "home" / "archive"
    config = parse(with_account(password="", password_file='"secrets/pw"'), tmp_path / "c.toml")
    assert config.accounts[0].password is not None
    assert config.accounts[0].password.file == tmp_path / "secrets" / "pw"


def test_account_lookup_error_lists_names() -> None:
    with pytest.raises(ConfigError, match=r"no account named 'nope' \(configured: work\)"):
        parse(MINIMAL).account("nope")


# -- errors --------------------------------------------------------------------------------------


def test_error_names_file_key_expected_and_found() -> None:
    message = error_of(with_account(port='"abc"'))
    assert message == f'{SOURCE}: accounts[0].port: expected an integer from 1 to 65535, got "abc"'


def test_pop3_only_key_on_an_imap_account_is_refused() -> None:
    message = error_of(with_account(pop3_auth='"apop"'))
    assert message == f"{SOURCE}: accounts[0].pop3_auth: only for protocol \"pop3\"; this account uses 'imap'"
    assert parse(with_account(protocol='"pop3"', pop3_auth='"apop"')).accounts[0].pop3_auth == "apop"


def test_error_index_is_zero_based_position_in_file() -> None:
    text = MINIMAL + '\n[[accounts]]\nname = "b"\nprotocol = "local"\ntimeout = 0\n'
    assert error_of(text) == f"{SOURCE}: accounts[1].timeout: expected a number greater than 0, got 0"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("port", "true", "accounts[0].port: expected an integer from 1 to 65535, got true"),
        ("port", "0", "accounts[0].port: expected an integer from 1 to 65535, got 0"),
        ("port", "65536", "accounts[0].port: expected an integer from 1 to 65535, got 65536"),
        ("port", "993.0", "accounts[0].port: expected an integer from 1 to 65535, got 993.0"),
        ("timeout", "true", "accounts[0].timeout: expected a number greater than 0, got true"),
        ("timeout", "-1", "accounts[0].timeout: expected a number greater than 0, got -1"),
        ("tls_verify", '"yes"', 'accounts[0].tls_verify: expected true or false, got "yes"'),
        ("tls_verify", "1", "accounts[0].tls_verify: expected true or false, got 1"),
        ("host", '""', 'accounts[0].host: expected a non-empty string, got ""'),
        ("host", "[1]", "accounts[0].host: expected a non-empty string, got an array"),
        (
            "name",
            '"my account"',
            "accounts[0].name: expected letters, digits, '.', '_' or '-' only, got \"my account\"",
        ),
        ("protocol", '"imaps"', 'accounts[0].protocol: expected one of "imap", "pop3", "local", got "imaps"'),
        ("security", '"ssl"', 'accounts[0].security: expected one of "tls", "starttls", "none", got "ssl"'),
        ("schedule", '""', 'accounts[0].schedule: expected a non-empty string, got ""'),
        ("folders", '"INBOX"', 'accounts[0].folders: expected a table [accounts[0].folders], got "INBOX"'),
        ("folders", '{include = "INBOX"}', 'accounts[0].folders.include: expected an array of strings, got "INBOX"'),
        ("folders", "{include = []}", "accounts[0].folders.include: expected a non-empty array of glob patterns"),
        ("folders", '{exclude = ["a", 2]}', "accounts[0].folders.exclude[1]: expected a non-empty string, got 2"),
        ("tls_ca_file", '"/nonexistent/ca.pem"', 'accounts[0].tls_ca_file: expected an existing file, got "/nonex'),
        ("password_command", '"unclosed \'quote"', "accounts[0].password_command: expected a command line"),
    ],
)
def test_account_value_errors(key: str, value: str, expected: str) -> None:
    extra = {"password": ""} if key.startswith("password") else {}
    message = error_of(with_account(**{key: value}, **extra))
    assert message.startswith(f"{SOURCE}: {expected}"), message


def test_choice_error_suggests_closest() -> None:
    assert error_of(with_account(protocol='"imapp"')).endswith('got "imapp"; did you mean "imap"?')


@pytest.mark.parametrize(
    ("archive", "expected"),
    [
        ("compression_level = 23", "archive.compression_level: expected an integer from 1 to 22, got 23"),
        ("compression_level = true", "archive.compression_level: expected an integer from 1 to 22, got true"),
        ("batch_bytes = 0", "archive.batch_bytes: expected an integer of at least 1, got 0"),
        ('batch_messages = "10"', 'archive.batch_messages: expected an integer of at least 1, got "10"'),
        ("path = 3", "archive.path: expected a non-empty string, got 3"),
    ],
)
def test_archive_value_errors(archive: str, expected: str) -> None:
    text = "[archive]\n" + ('path = "/a"\n' if not archive.startswith("path") else "") + archive + "\n"
    assert error_of(text) == f"{SOURCE}: {expected}"


def test_missing_archive_and_path() -> None:
    assert error_of("") == f"{SOURCE}: archive: missing required key (expected a table [archive])"
    assert error_of("[archive]\n") == f"{SOURCE}: archive.path: missing required key (expected a string)"
    assert error_of('archive = "x"') == f'{SOURCE}: archive: expected a table [archive], got "x"'


def test_accounts_must_be_array_of_tables() -> None:
    message = error_of('accounts = "x"\n[archive]\npath = "/a"\n')
    assert message == f'{SOURCE}: accounts: expected an array of tables [[accounts]], got "x"'


@pytest.mark.parametrize("key", ["name", "protocol", "host", "username"])
def test_required_account_keys(key: str) -> None:
    message = error_of(with_account(**{key: ""}))
    assert message.startswith(f"{SOURCE}: accounts[0].{key}: missing required key (expected ")


def test_local_protocol_needs_no_host_user_or_password() -> None:
    config = parse(with_account(protocol='"local"', host="", username="", password=""))
    account = config.accounts[0]
    assert (account.protocol, account.host, account.port, account.password) == ("local", None, None, None)


def test_unknown_key_suggests_closest_and_lists_valid_keys() -> None:
    message = error_of(with_account(password="", pasword_file='"/x"'))
    assert message.startswith(
        f"{SOURCE}: accounts[0].pasword_file: unknown key (did you mean 'password_file'?); valid keys"
    )
    assert "valid keys in [accounts[0]]: name, protocol, host, port," in message


def test_unknown_keys_everywhere() -> None:
    assert error_of('[archive]\npath = "/a"\n[acounts]\n').startswith(
        f"{SOURCE}: acounts: unknown key (did you mean 'accounts'?); valid keys at the top level: archive, accounts"
    )
    assert error_of('[archive]\npath = "/a"\ncompresion = 3\n').startswith(
        f"{SOURCE}: archive.compresion: unknown key (did you mean 'compression_level'?);"
    )
    message = error_of(with_account(folders='{include = ["*"], exlude = ["Trash"]}'))
    assert message.startswith(f"{SOURCE}: accounts[0].folders.exlude: unknown key (did you mean 'exclude'?);")
    assert "; valid keys in [accounts[0].folders]: include, exclude" in message


def test_unknown_key_without_close_match() -> None:
    message = error_of('[archive]\npath = "/a"\nzzz = 1\n')
    assert message == (
        f"{SOURCE}: archive.zzz: unknown key; valid keys in [archive]: path, compression_level, batch_bytes, "
        "batch_messages, max_run_time, reconnect_attempts, throttle_patience, group_readable, max_message_bytes, "
        "encryption, passphrase, passphrase_file, passphrase_command, passphrase_env, key_file, "
        "store, endpoint, region, access_key_id, access_key_id_file, access_key_id_command, access_key_id_env, "
        "secret_access_key, secret_access_key_file, secret_access_key_command, secret_access_key_env, "
        "store_timeout, upload_workers, snapshots_keep"
    )


def _inline_toml(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_inline_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def test_the_schema_is_what_the_reader_enforces_in_every_table() -> None:
    """KEYS_BY_TABLE and ARRAY_TABLES (read by the docs test) are the reader's own lists, table by table."""
    for path, keys in KEYS_BY_TABLE.items():
        doc: dict[str, object] = {"archive": {"path": "/a"}}
        table, shown = doc, []
        for depth, name in enumerate(path.split(".") if path else []):
            here = ".".join(path.split(".")[: depth + 1])
            inner = table.get(name) or ({"name": "x", "protocol": "local"} if here == "accounts" else {})
            table[name] = [inner] if here in ARRAY_TABLES else inner
            shown.append(f"{name}[0]" if here in ARRAY_TABLES else name)
            table = inner
        table["zz_unknown"] = 1
        where = f"in [{'.'.join(shown)}]" if shown else "at the top level"
        message = error_of("\n".join(f"{k} = {_inline_toml(v)}" for k, v in doc.items()))
        assert message.endswith(f"zz_unknown: unknown key; valid keys {where}: {', '.join(keys)}"), path


def test_duplicate_account_names() -> None:
    text = (
        MINIMAL
        + '\n[[accounts]]\nname = "other"\nprotocol = "local"\n[[accounts]]\nname = "work"\nprotocol = "local"\n'
    )
    message = error_of(text)
    assert message == (
        f"{SOURCE}: accounts[2].name: duplicate account name 'work' (already used by accounts[0]); names must be unique"
    )


def test_password_is_required_unless_local() -> None:
    message = error_of(with_account(password=""))
    assert message == (
        f"{SOURCE}: accounts[0]: expected one of password, password_file, password_command, password_env "
        "(a password is required), got none"
    )


def test_only_one_password_source() -> None:
    message = error_of(with_account(password_env='"PW"'))
    assert message == (
        f"{SOURCE}: accounts[0]: expected exactly one of password, password_file, password_command, "
        "password_env, got 2 (password, password_env)"
    )
    assert "got 2" in error_of(with_account(protocol='"local"', password_env='"PW"'))


def test_wrong_type_for_literal_password_does_not_echo_it() -> None:
    message = error_of(with_account(password="12345678"))
    assert message == f"{SOURCE}: accounts[0].password: expected a non-empty string, got a number"
    assert "12345678" not in message


def test_toml_syntax_error_gives_line_and_column() -> None:
    message = error_of('[archive]\npath = "/a"\nbatch_bytes = = 3\n')
    assert message == f"{SOURCE}: line 3, column 15: invalid TOML: Invalid value"
    assert error_of('[archive]\npath = "/a').startswith(f"{SOURCE}: end of document: invalid TOML: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_load_config_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[archive]\npath = "a"\n')
    path.chmod(0o600)
    config = load_config(path)
    assert config.source == path and config.archive.path == tmp_path / "a"


# -- permission warnings --------------------------------------------------------------------------


def test_literal_password_in_readable_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="archiver.config"):
        config = load_config(path)
    (warning,) = config.warnings
    assert "accounts[0].password" in warning and "mode 0644" in warning and "chmod 600" in warning
    assert "hunter2-literal" not in warning
    assert [r.getMessage() for r in caplog.records if r.name == "archiver.config"] == [warning]


def test_literal_password_in_private_file_does_not_warn(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL)
    path.chmod(0o600)
    assert load_config(path).warnings == ()


def test_readable_password_file_warns(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o640)
    path = tmp_path / "config.toml"
    path.write_text(with_account(password="", password_file='"pw"'))
    path.chmod(0o644)  # no literal password: the config's own mode does not matter
    (warning,) = load_config(path).warnings
    assert "accounts[0].password_file" in warning and "mode 0640" in warning
    secret.chmod(0o600)
    assert load_config(path).warnings == ()


# -- secrets -------------------------------------------------------------------------------------


def test_resolve_literal_and_repr_hides_it() -> None:
    source = parse(MINIMAL).accounts[0].password
    assert source is not None
    assert source.resolve() == "hunter2-literal"
    for shown in (repr(source), str(source), f"{source}", repr(parse(MINIMAL))):
        assert "hunter2" not in shown
    assert "hidden" in repr(source)


def test_resolve_file_strips_one_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret \n\n")
    source = PasswordSource("file", file=tmp_path / "pw", account="work", key="accounts[0].password_file")
    assert source.resolve() == "s3cret \n"
    (tmp_path / "pw").write_bytes(b"s3cret\r\n")
    assert source.resolve() == "s3cret"


def test_resolve_missing_file(tmp_path: Path) -> None:
    source = PasswordSource("file", file=tmp_path / "pw", account="work", key="accounts[0].password_file")
    with pytest.raises(SecretError, match=r"account 'work': accounts\[0\].password_file: cannot read .*pw"):
        source.resolve()


def test_resolve_command() -> None:
    command = shlex.join([sys.executable, "-c", "print('s3cret')"])
    source = PasswordSource("command", command=command, account="work", key="accounts[0].password_command")
    assert source.resolve() == "s3cret"


def test_failing_command_names_account_and_exit_code_not_stdout() -> None:
    script = "import sys; print('leaked-s3cret'); sys.stderr.write('gpg: decryption failed\\n'); sys.exit(3)"
    command = shlex.join([sys.executable, "-c", script])
    source = PasswordSource("command", command=command, account="work", key="accounts[0].password_command")
    with pytest.raises(SecretError) as info:
        source.resolve()
    message = str(info.value)
    assert "account 'work'" in message and "accounts[0].password_command" in message
    assert "exit code 3" in message and "gpg: decryption failed" in message
    assert "leaked-s3cret" not in message


def test_command_not_found_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    source = PasswordSource("command", command="/nonexistent/pw-helper", account="work", key="k")
    with pytest.raises(SecretError, match="'/nonexistent/pw-helper': not found"):
        source.resolve()
    monkeypatch.setattr(config_secrets, "PASSWORD_COMMAND_TIMEOUT", 0.2)
    slow = PasswordSource("command", command=shlex.join([sys.executable, "-c", "import time; time.sleep(5)"]))
    with pytest.raises(SecretError, match=r"did not finish within 0\.2 s"):
        slow.resolve()


def test_resolve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    source = PasswordSource("env", env="ARCHIVER_TEST_PW", account="work", key="accounts[0].password_env")
    monkeypatch.setenv("ARCHIVER_TEST_PW", "s3cret")
    assert source.resolve() == "s3cret"
    monkeypatch.delenv("ARCHIVER_TEST_PW")
    with pytest.raises(SecretError, match=r"account 'work': .*environment variable ARCHIVER_TEST_PW is not set"):
        source.resolve()
    monkeypatch.setenv("ARCHIVER_TEST_PW", "")
    with pytest.raises(SecretError, match="the password is empty"):
        source.resolve()


# -- folder filter -------------------------------------------------------------------------------


def test_folder_filter_semantics() -> None:
    everything = FolderFilter()
    assert everything.matches("INBOX") and everything.matches("Work/2023")
    work = FolderFilter(include=("INBOX", "Work*"), exclude=("*/Trash", "Work/Old"))
    assert work.matches("INBOX")
    assert work.matches("Work") and work.matches("Work/2023") and work.matches("Workshop")
    assert not work.matches("Work/Trash")  # excluded wins over included
    assert not work.matches("Work/Old")
    assert not work.matches("inbox")  # case-sensitive
    assert not work.matches("Personal")
    assert FolderFilter(include=("Work",)).matches("Work") and not FolderFilter(include=("Work",)).matches("Work/a")
    assert FolderFilter(include=("Archive/[0-9]*",)).matches("Archive/2021")


# -- finding the file ----------------------------------------------------------------------------


def test_find_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_load, "SYSTEM_CONFIG_PATH", tmp_path / "etc" / "config.toml")
    monkeypatch.delenv("ARCHIVER_CONFIG", raising=False)
    with pytest.raises(ConfigError) as info:
        find_config_path(None)
    assert "archiver.toml" in str(info.value) and str(tmp_path / "etc" / "config.toml") in str(info.value)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "config.toml").write_text("")
    assert find_config_path(None) == tmp_path / "etc" / "config.toml"
    (tmp_path / "archiver.toml").write_text("")
    assert find_config_path(None) == Path("archiver.toml")
    monkeypatch.setenv("ARCHIVER_CONFIG", "/from/env.toml")
    assert find_config_path(None) == Path("/from/env.toml")
    assert find_config_path("/explicit.toml") == Path("/explicit.toml")


def test_example_config_is_valid() -> None:
    """config.example.toml is documentation users copy: it must load and show every key."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    config = config_from_toml_text(example.read_text(), example)
    assert [a.name for a in config.accounts] == ["work", "old-isp", "imported"]
    text = example.read_text()
    for key in (*KEYS_BY_TABLE["archive"], *KEYS_BY_TABLE["accounts"], *KEYS_BY_TABLE["accounts.folders"]):
        assert f"{key} =" in text or f"[accounts.{key}]" in text, key


def test_example_config_shows_every_table_and_key() -> None:
    """The web, scheduler, alerts and metrics tables are documented with all their keys too."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    text = example.read_text()
    config = config_from_toml_text(text, example)
    assert config.web.users and config.alerts.email is not None and config.metrics.enabled
    for table in ("[web]", "[[web.users]]", "[scheduler]", "[alerts]", "[alerts.email]", "[metrics]"):
        assert table in text, table
    one_of = {*PASSWORD_KEYS, "token"}  # alternatives: one is shown, the others named in comments
    keys = (
        *KEYS_BY_TABLE["web"],
        *KEYS_BY_TABLE["web.users"],
        *KEYS_BY_TABLE["scheduler"],
        *KEYS_BY_TABLE["alerts"],
        *KEYS_BY_TABLE["alerts.email"],
        *KEYS_BY_TABLE["metrics"],
    )
    for key in keys:
        if key in one_of:
            assert key in text, key
        else:
            assert f"{key} =" in text or f"[alerts.{key}]" in text or f"[[web.{key}]]" in text, key


def test_index_table_default_and_errors() -> None:
    assert parse(MINIMAL).index.memory_mb == 150
    assert parse(MINIMAL + "\n[index]\nmemory_mb = 512\n").index.memory_mb == 512
    assert error_of(MINIMAL + "\n[index]\nmemory_mb = 32\n") == (
        f"{SOURCE}: index.memory_mb: expected an integer of at least 64, got 32"
    )
    assert error_of(MINIMAL + '\n[index]\nmemory_mb = "512M"\n') == (
        f'{SOURCE}: index.memory_mb: expected an integer of at least 64, got "512M"'
    )
    assert parse(MINIMAL).index.update == "background"
    assert parse(MINIMAL + '\n[index]\nupdate = "wait"\n').index.update == "wait"
    assert error_of(MINIMAL + '\n[index]\nupdate = "wiat"\n') == (
        f'{SOURCE}: index.update: expected one of "background", "wait", got "wiat"; did you mean "wait"?'
    )
    assert error_of(MINIMAL + "\n[index]\nmemory = 100\n").startswith(
        f"{SOURCE}: index.memory: unknown key (did you mean 'memory_mb'?); valid keys in [index]: memory_mb"
    )


def test_example_config_shows_the_index_table() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    text = example.read_text()
    assert "[index]" in text
    for key in KEYS_BY_TABLE["index"]:
        assert f"{key} =" in text, key
    assert config_from_toml_text(text, example).index.memory_mb == 150
