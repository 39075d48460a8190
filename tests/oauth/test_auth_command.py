"""``archiver auth ACCOUNT``: the command around the flows, against the loopback authorization server."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from archiver.cli import main
from archiver.devtools.sandbox import free_ports
from archiver.oauth.store import TokenFile
from tests.fixtures.oauth_helpers import consent, introspect
from tests.fixtures.oauth_server import PUBLIC_CLIENT_ID, OAuthServer


def write_config(tmp_path: Path, server: OAuthServer) -> Path:
    path = tmp_path / "archiver.toml"
    path.write_text(
        f'[archive]\npath = "{tmp_path / "archive"}"\n\n'
        '[[accounts]]\nname = "work"\nprotocol = "imap"\nhost = "127.0.0.1"\nusername = "ivan"\n'
        f'auth = "oauth2"\noauth2_provider = "custom"\noauth2_client_id = "{PUBLIC_CLIENT_ID}"\n'
        f'oauth2_scopes = ["mail", "offline_access"]\noauth2_token_url = "{server.token_url}"\n'
        f'oauth2_device_url = "{server.device_url}"\noauth2_authorize_url = "{server.authorize_url}"\n'
        '\n[[accounts]]\nname = "home"\nprotocol = "imap"\nhost = "127.0.0.1"\nusername = "u"\n'
        'password_env = "HOME_PW"\n'
        '\n[[accounts]]\nname = "helped"\nprotocol = "imap"\nhost = "127.0.0.1"\nusername = "h"\n'
        'auth = "oauth2"\ntoken_command = "oauth-helper"\n'
    )
    return path


def approve_when_asked(server: OAuthServer, username: str) -> threading.Thread:
    """The user, at another device: approves the first code that shows up."""

    def act() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            codes = server.pending_user_codes()
            if codes:
                server.approve_device(codes[0], username)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_device_flow_stores_the_token_and_prints_none(oauth_server: OAuthServer, tmp_path: Path) -> None:
    oauth_server.device_interval = 1
    config = write_config(tmp_path, oauth_server)
    approve_when_asked(oauth_server, "ivan")
    result = CliRunner().invoke(main, ["--config", str(config), "auth", "work"])
    assert result.exit_code == 0, result.output
    token_file = tmp_path / "archive" / "oauth" / "work.json"
    assert result.output.splitlines()[-1] == f"account work: authorised; the token is stored in {token_file}"
    assert f"open {oauth_server.base_url}/device in any browser" in result.output
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = TokenFile(token_file, "work").load()
    assert introspect(oauth_server, stored.access_token or "")["username"] == "ivan"
    assert stored.refresh_token and stored.refresh_token not in result.output
    assert stored.access_token not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["auth", "home"],
            "archiver: error: account 'home' signs in with a password; set auth = \"oauth2\" to use OAuth2",
        ),
        (["auth", "nope"], "archiver: error: no account named 'nope' (configured: work, home, helped)"),
        (["auth", "helped"], "archiver: error: account 'helped' gets its tokens from token_command; "
                             "`archiver auth` has nothing to do"),
    ],
)  # fmt: skip
def test_wrong_accounts_are_one_line(oauth_server: OAuthServer, tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["--config", str(write_config(tmp_path, oauth_server)), *args])
    assert (result.exit_code, result.output.strip()) == (2, message)


def test_a_denial_is_one_line_and_stores_nothing(oauth_server: OAuthServer, tmp_path: Path) -> None:
    oauth_server.device_interval = 1
    config = write_config(tmp_path, oauth_server)

    def deny() -> None:
        while not oauth_server.pending_user_codes():
            time.sleep(0.05)
        oauth_server.deny_device(oauth_server.pending_user_codes()[0])

    threading.Thread(target=deny, daemon=True).start()
    result = CliRunner().invoke(main, ["--config", str(config), "auth", "work"])
    assert result.exit_code == 1
    assert (
        result.output.splitlines()[-1]
        == "archiver: error: account 'work': the authorisation was denied at the provider"
    )
    assert not (tmp_path / "archive" / "oauth" / "work.json").exists()


def test_port_is_only_for_the_loopback_flow(oauth_server: OAuthServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, oauth_server)
    result = CliRunner().invoke(main, ["--config", str(config), "auth", "work", "--flow", "device", "--port", "8080"])
    assert result.exit_code == 2 and "--port is only for --flow loopback" in result.output


def test_an_html_page_from_the_device_endpoint_is_one_line(oauth_server: OAuthServer, tmp_path: Path) -> None:
    oauth_server.answer_html_errors(status=503)
    result = CliRunner().invoke(main, ["--config", str(write_config(tmp_path, oauth_server)), "auth", "work"])
    assert (result.exit_code, result.output) == (
        1,
        "archiver: error: account 'work': starting the device authorization: 127.0.0.1 answered HTTP 503 "
        "(an HTML page), not an OAuth2 answer\n",
    )


def test_loopback_flow_from_the_command_line_on_a_chosen_port(oauth_server: OAuthServer, tmp_path: Path) -> None:
    """The real command in its own process, as over SSH: it prints the URL, the browser comes back to --port."""
    config = write_config(tmp_path, oauth_server)
    (port,) = free_ports(1)
    command = [sys.executable, "-m", "archiver", "--config", str(config), "auth", "work", "--flow", "loopback",
               "--port", str(port)]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        lines = [child.stdout.readline() for _ in range(3)]
        url = lines[1].strip()
        assert parse_qs(urlsplit(url).query)["redirect_uri"] == [f"http://127.0.0.1:{port}/"]
        assert f"`ssh -L {port}:127.0.0.1:{port} " in lines[2]
        consent(url, "approve", username="judy")
        out, err = child.communicate(timeout=30)
    assert (child.returncode, err) == (0, "")
    token_file = tmp_path / "archive" / "oauth" / "work.json"
    assert out.splitlines()[-1] == f"account work: authorised; the token is stored in {token_file}"
    assert introspect(oauth_server, TokenFile(token_file, "work").load().access_token or "")["username"] == "judy"
