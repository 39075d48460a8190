"""Discovery without the network: presets, the autoconfig reader (fuzzed), the TOML written for an account."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.config import config_from_toml_text, load_config
from archiver.config.append import append_account, write_secret_file
from archiver.discovery.account_toml import AccountEntry, render_account
from archiver.discovery.autoconfig import parse_autoconfig
from archiver.discovery.discover import discover
from archiver.discovery.model import Discovery, Server, check_address, is_hostname
from archiver.discovery.presets import PRESETS, preset_for_domain, preset_for_mx, preset_named
from archiver.errors import ConfigError, DiscoveryError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- presets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "name", "host", "port", "username"),
    [
        ("someone@gmail.com", "gmail", "imap.gmail.com", 993, "someone@gmail.com"),
        ("someone@GoogleMail.com", "gmail", "imap.gmail.com", 993, "someone@GoogleMail.com"),
        ("someone@hotmail.fr", "outlook.com", "outlook.office365.com", 993, "someone@hotmail.fr"),
        ("someone@contoso.onmicrosoft.com", "microsoft365", "outlook.office365.com", 993, None),
        ("someone@icloud.com", "icloud", "imap.mail.me.com", 993, "someone"),
        ("someone@free.fr", "free", "imap.free.fr", 993, "someone"),
        ("someone@wanadoo.fr", "orange", "imap.orange.fr", 993, None),
        ("someone@ymail.com", "yahoo", "imap.mail.yahoo.com", 993, None),
        ("someone@gmx.de", "gmx", "imap.gmx.net", 993, None),
        ("someone@posteo.net", "posteo", "posteo.de", 993, None),
    ],
)
def test_an_address_at_a_known_provider_needs_no_network(email, name, host, port, username):
    found = discover(email, dns_server="192.0.2.1:9", autoconfig=[], fetch=_no_network)
    assert found.preset == name
    assert (found.server.host, found.server.port, found.server.security) == (host, port, "tls")
    assert found.server.username == (username or email)


def _no_network(url: str) -> bytes | None:
    raise AssertionError(f"fetched {url}")


def test_oauth2_presets_name_their_oauth2_provider():
    assert (PRESETS["gmail"].auth, PRESETS["gmail"].oauth2_provider) == ("oauth2", "google")
    for name in ("microsoft365", "outlook.com"):
        assert (PRESETS[name].auth, PRESETS[name].oauth2_provider) == ("oauth2", "microsoft")
    assert all(p.oauth2_provider is None for p in PRESETS.values() if p.auth == "password")
    assert PRESETS["gmail"].quirks.gmail_labels and PRESETS["gmail"].quirks.daily_download_quota
    assert PRESETS["microsoft365"].quirks.throttling


def test_a_provider_without_pop3_says_so():
    with pytest.raises(DiscoveryError, match="iCloud Mail offers no POP3 server; use --protocol imap"):
        discover("someone@me.com", "pop3", dns_server="192.0.2.1:9", fetch=_no_network)


def test_mx_matching_is_on_whole_labels():
    assert preset_for_mx(["ASPMX.L.GOOGLE.COM."]).name == "gmail"
    assert preset_for_mx(["smtp.google.com"]).name == "gmail"
    assert preset_for_mx(["in1-smtp.messagingengine.com"]).name == "fastmail"
    assert preset_for_mx(["mx.notgoogle.com", "google.com.evil.test"]) is None
    assert preset_for_domain("notgmail.com") is None


def test_an_unknown_provider_is_one_line_listing_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        preset_named("gmial")
    message = str(caught.value)
    assert 'did you mean "gmail"?' in message
    assert all(f'"{name}"' in message for name in PRESETS)
    assert "\n" not in message


@pytest.mark.parametrize("bad", ["", "alice", "alice@", "@example.org", "alice@localhost", "a b@example.org",
                                 "alice@exa mple.org", "alice@-bad-.org", "alice@" + "x" * 300 + ".org"])  # fmt: skip
def test_what_is_not_an_address_is_one_line(bad):
    with pytest.raises(DiscoveryError, match="is not an e-mail address"):
        check_address(bad)


# -- the autoconfig reader --------------------------------------------------------------------


def test_the_reader_takes_the_thunderbird_format_as_the_isp_database_writes_it():
    data = b"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.test">
    <incomingServer type="exchange"><hostname>ews.example.test</hostname></incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>OAuth2</authentication><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.test</hostname><port>110</port><socketType>STARTTLS</socketType>
      <authentication>NTLM</authentication>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.test</hostname><port>995</port><socketType>SSL</socketType>
      <authentication>OAuth2</authentication>
    </incomingServer>
  </emailProvider>
</clientConfig>"""
    servers = parse_autoconfig(data, "Bob@Example.test")
    assert servers == [
        Server("imap", "imap.example.test", 993, "tls", "Bob", "password"),
        Server("pop3", "pop.example.test", 995, "tls", "Bob@Example.test", "oauth2"),
    ]


_TAGS = st.sampled_from(
    ["<clientConfig>", "</clientConfig>", "<emailProvider>", "</emailProvider>", '<incomingServer type="imap">',
     '<incomingServer type="pop3">', "</incomingServer>", "<hostname>", "</hostname>", "<port>", "</port>",
     "<socketType>", "</socketType>", "<username>", "</username>", "<authentication>", "</authentication>",
     "imap.example.test", "993", "-1", "99999999999999999999", "SSL", "plain", "STARTTLS", "%EMAILADDRESS%",
     "password-cleartext", "OAuth2", "&amp;", "&bogus;", "<![CDATA[x]]>", "<!-- c -->", "\x00", "é", " "]
)  # fmt: skip
_XMLISH = st.lists(st.one_of(_TAGS, st.text(max_size=6)), max_size=40).map("".join)


@FUZZ
@given(body=_XMLISH, encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]), header=st.booleans())
def test_fuzzed_autoconfig_files_give_servers_or_one_discovery_error(body, encoding, header):
    prolog = f'<?xml version="1.0" encoding="{encoding}"?>' if header else ""
    try:
        data = (prolog + body).encode(encoding, errors="replace")
    except UnicodeEncodeError:
        return
    _parse_or_discovery_error(data)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzzed_bytes_give_one_discovery_error(data):
    _parse_or_discovery_error(data)


def _mostly(values: list[str], noise_size: int) -> st.SearchStrategy[str]:
    """Three times in four a listed value (mostly valid ones, some wrong), else noise."""
    listed = st.sampled_from(values)
    return st.one_of(listed, listed, listed, st.text(max_size=noise_size))


_FIELDS = {
    "hostname": _mostly(["imap.example.test", "%EMAILDOMAIN%", "mail.%EMAILDOMAIN%", "a..b", "h\u00f6st.example"], 12),
    "port": _mostly(["993", "143", "995", "110", "0", "65536", " 993 ", "\u00b2"], 6),
    "socketType": _mostly(["SSL", "STARTTLS", "plain", "starttls", "TLS"], 6),
    "username": _mostly(["%EMAILADDRESS%", "%EMAILLOCALPART%", "\x07"], 12),
    "authentication": _mostly(["password-cleartext", "OAuth2", "NTLM", "password-encrypted"], 6),
}


@st.composite
def server_entries(draw: st.DrawFn) -> str:
    """incomingServer elements whose every field is drawn: the per-server checks, not only the XML parser."""
    entries = []
    for _ in range(draw(st.integers(1, 4))):
        fields = "".join(
            f"<{tag}>{_escape(draw(values))}</{tag}>"
            for tag, values in _FIELDS.items()
            if tag in ("hostname", "port", "socketType") or draw(st.booleans())
        )
        kind = draw(st.sampled_from(["imap", "pop3", "imap", "pop3", "IMAP", "smtp", "exchange", ""]))
        entries.append(f'<incomingServer type="{kind}">{fields}</incomingServer>')
    return f"<clientConfig><emailProvider>{''.join(entries)}</emailProvider></clientConfig>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@FUZZ
@given(document=server_entries())
def test_fuzzed_server_entries_give_only_servers_a_config_can_take(document):
    _parse_or_discovery_error(document.encode("utf-8", errors="replace"))


def _parse_or_discovery_error(data: bytes) -> None:
    try:
        servers = parse_autoconfig(data, "fuzz@example.test")
    except DiscoveryError as exc:
        assert "\n" not in str(exc)
        return
    assert servers
    for server in servers:
        assert server.protocol in ("imap", "pop3") and 1 <= server.port <= 65535
        assert server.security in ("tls", "starttls", "none") and server.auth in ("password", "oauth2")
        assert is_hostname(server.host) and server.username.isprintable()


# -- the TOML written for an account ----------------------------------------------------------


def _found(preset: str | None = None, **server: object) -> Discovery:
    fields = {"protocol": "imap", "host": "mail.example.test", "port": 993, "security": "tls", "username": "bob"}
    return Discovery("bob@example.test", Server(**{**fields, **server}), "SRV records of example.test", preset)


def test_a_table_with_odd_characters_reads_back_as_written(tmp_path):
    entry = AccountEntry("bob", ("password_command", 'pass show "mail/bob\\work"'), extra=(("timeout", 30),))
    table = render_account(_found(username='b"o\\b\u00e9'), entry)
    account = tomllib.loads(table)["accounts"][0]
    assert account["username"] == 'b"o\\b\u00e9'
    assert account["password_command"] == 'pass show "mail/bob\\work"'
    assert (account["host"], account["port"], account["security"], account["timeout"]) == (
        "mail.example.test", 993, "tls", 30,
    )  # fmt: skip


def test_appending_keeps_the_file_and_its_comments_and_refuses_a_clash(tmp_path):
    config = tmp_path / "archiver.toml"
    original = '# my archive\n[archive]\npath = "archive"  # relative to this file\n'
    config.write_text(original)
    config.chmod(0o640)
    table = render_account(_found(), AccountEntry("bob", ("password_file", "bob.password")))
    append_account(config, table)
    text = config.read_text()
    assert text.startswith(original) and text.endswith(table)
    assert os.stat(config).st_mode & 0o777 == 0o640
    assert load_config(config).account("bob").host == "mail.example.test"

    with pytest.raises(ConfigError, match="duplicate account name 'bob'"):
        append_account(config, table)
    assert config.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["archiver.toml"]  # no temp file left behind


def test_a_password_file_is_private_from_the_first_byte_and_never_overwritten(tmp_path):
    path = tmp_path / "bob.password"
    write_secret_file(path, "s3cret")
    assert path.read_text() == "s3cret\n" and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="already exists"):
        write_secret_file(path, "other")
    assert path.read_text() == "s3cret\n"


def test_a_written_table_loads_with_the_config_reader(tmp_path):
    table = render_account(_found(security="starttls", port=143), AccountEntry("bob", ("password_env", "BOB_PW")))
    text = f'[archive]\npath = "{tmp_path}"\n\n{table}'
    account = config_from_toml_text(text, Path(tmp_path / "archiver.toml")).account("bob")
    assert (account.host, account.port, account.security, account.username) == (
        "mail.example.test",
        143,
        "starttls",
        "bob",
    )


def test_the_provider_table_in_the_docs_says_what_each_preset_sets():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "providers.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in docs.splitlines() if line.startswith("| `")}
    for name, preset in PRESETS.items():
        row = rows.get(name)
        assert row is not None, f"docs/providers.md has no row for provider {name!r}"
        for endpoint in (preset.imap, preset.pop3, preset.smtp):
            if endpoint is not None:
                shown = "TLS" if endpoint.security == "tls" else "STARTTLS"
                assert f"{endpoint.host}:{endpoint.port} {shown}" in row, (name, endpoint)
        assert ("OAuth2" in row) == (preset.auth == "oauth2"), name
    assert "exercised only through the local test setup" in docs


def test_a_named_provider_skips_discovery_and_an_unknown_one_is_one_line():
    found = discover("me@my-own-domain.fr", provider="ovh", dns_server="192.0.2.1:9", fetch=_no_network)
    assert (found.server.host, found.server.port, found.preset) == ("ssl0.ovh.net", 993, "ovh")
    with pytest.raises(ConfigError, match=r"--provider: unknown provider 'ovhh'; did you mean \"ovh\"\?"):
        discover("me@my-own-domain.fr", provider="ovhh", fetch=_no_network)


@pytest.mark.parametrize("server", ["dns.example.org", "127.0.0.1:99999", "127.0.0.1:x", "[::1", "127.0.0.1:\u00b2"])
def test_a_bad_dns_server_option_is_one_line(server):
    with pytest.raises(DiscoveryError, match="--dns-server: expected"):
        discover("me@example.test", dns_server=server, fetch=_no_network)


def test_the_table_says_oauth2_only_when_the_account_signs_in_so():
    oauth2 = _found(auth="oauth2", oauth2_provider="microsoft")
    table = tomllib.loads(render_account(oauth2, AccountEntry("m", None, extra=(("oauth2_client_id", "id"),))))
    assert (table["accounts"][0]["auth"], table["accounts"][0]["oauth2_provider"]) == ("oauth2", "microsoft")
    overridden = render_account(oauth2, AccountEntry("m", ("password_env", "PW"), auth="password"))
    assert "auth" not in tomllib.loads(overridden)["accounts"][0]
    gmail = Discovery("a@gmail.com", PRESETS["gmail"].server("imap", "a@gmail.com"), "preset", "gmail")
    app_password = tomllib.loads(render_account(gmail, AccountEntry("g", ("password_env", "PW"), auth="password")))
    assert app_password["accounts"][0]["auth"] == "password" and app_password["accounts"][0]["provider"] == "gmail"
    assert "host" not in app_password["accounts"][0]  # the preset's, not repeated


def test_the_advice_names_each_quirk_of_a_preset():
    assert any("[Gmail]/All Mail" in line for line in PRESETS["gmail"].advice())
    assert any("2,500 MB" in line for line in PRESETS["gmail"].advice())
    assert any("app password" in line for line in PRESETS["icloud"].advice())
    assert any("Switch IMAP/POP3 access on" in line for line in PRESETS["gmx"].advice())
    assert PRESETS["orange"].advice() == []
