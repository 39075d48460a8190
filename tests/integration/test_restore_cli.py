"""``archiver restore/export/import`` from the command line: scopes by run and date, dry runs, and every
user mistake answered with one clear line and a non-zero exit, never a traceback or a password."""

from __future__ import annotations

import json
import secrets

import pytest

from archiver.backup import run_backup
from archiver.times import utc_now
from tests.fixtures.archives import archive_at
from tests.fixtures.cli import assert_one_clear_line
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import MailUser, account_toml, fill_for_restore, state

pytestmark = pytest.mark.integration

DOOMED = "Doomed/Ünïcode & more"


@pytest.fixture(scope="module")
def setup(dovecot, tmp_path_factory):
    """An account backed up twice: before and after its folder ``Doomed/…`` was deleted on the server.

    Also configured: a second, empty account (``dst``), one whose password is wrong (``badlogin``)
    and a local one (``old``).  Tests only read this archive (each restores into its own prefix)."""
    tmp = tmp_path_factory.mktemp("restore-cli")
    user = MailUser(f"cli{secrets.token_hex(3)}", f"pw-{secrets.token_hex(6)}")
    other = MailUser(user.name + "d", f"pw-{secrets.token_hex(6)}")
    dovecot.add_user(user.name, user.password)
    dovecot.add_user(other.name, other.password)
    folders = fill_for_restore(dovecot, user, 30, seed=12, folders=3)
    before = {name: state(dovecot, user, name) for name in folders}
    secret = "Wr0ng-Secret-zz9"
    accounts = (
        account_toml(dovecot, user, name="acct")
        + account_toml(dovecot, other, name="dst")
        + account_toml(dovecot, other, name="badlogin", password=secret)
        + '\n[[accounts]]\nname = "old"\nprotocol = "local"\n'
    )
    path = write_config(tmp, accounts)
    config = parse_config(path)
    with archive_at(config) as archive:
        assert run_backup(config, config.account("acct"), archive=archive).ok
        first_run = archive.catalog.last_runs(archive.catalog.account_id("acct"), 1)[0]["id"]
    moment = utc_now().isoformat()
    client = dovecot.connect(user.name, user.password)
    client.delete_folder(DOOMED)
    client.logout()
    with archive_at(config) as archive:
        assert run_backup(config, config.account("acct"), archive=archive).ok
    return {
        "path": path,
        "user": user,
        "other": other,
        "before": before,
        "first_run": first_run,
        "moment": moment,
        "secret": secret,
        "tmp": tmp,
    }


def test_whole_account_as_of_a_date_brings_back_the_deleted_folder(dovecot, setup, cli):
    path, other = setup["path"], setup["other"]
    args = ["restore", "--account", "acct", "--to", "dst", "--as-of", setup["moment"], "--prefix", "AsOf"]
    dry = cli(path, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{DOOMED} -> AsOf/{DOOMED} (new folder): would append" in dry.stdout
    client = dovecot.connect(other.name, other.password)
    try:
        assert not client.list_folders("", "AsOf*")  # a dry run changes nothing
    finally:
        client.logout()
    result = cli(path, *args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["failed"] == 0
    assert report["appended"] == sum(sum(c.values()) for c in setup["before"].values())
    for folder, expected in setup["before"].items():
        assert state(dovecot, other, f"AsOf/{folder}") == expected, folder


def test_folder_as_of_a_run_number(dovecot, setup, cli):
    path, other = setup["path"], setup["other"]
    now = cli(path, "restore", "--account", "acct", "--to", "dst", "--dry-run")
    assert now.returncode == 0 and DOOMED not in now.stdout  # gone from the account as it is now
    result = cli(
        path, "restore", "--account", "acct", "--folder", DOOMED, "--run", str(setup["first_run"]), "--to", "dst",
        "--prefix", "ByRun",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert state(dovecot, other, f"ByRun/{DOOMED}") == setup["before"][DOOMED]
    assert "skipped 0, failed 0" in result.stdout.splitlines()[-1]


def test_default_prefix_is_restored_and_the_date(setup, cli):
    result = cli(setup["path"], "restore", "--account", "acct", "--folder", "INBOX", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"INBOX -> Restored/{utc_now().date().isoformat()}/INBOX (new folder)" in result.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["restore", "--account", "nope"], ["no account named 'nope'"]),
        (["restore", "--account", "nope", "--to", "dst"], ["the archive has no account 'nope'"]),
        (["restore", "--account", "acct", "--to", "nope"], ["no account named 'nope'"]),
        (["restore", "--account", "acct", "--folder", "Nope"], ["has no folder 'Nope'"]),
        (["restore", "--account", "acct", "--as-of", "yesterday"], ["--as-of", "expected a date"]),
        (["restore", "--account", "acct", "--as-of", "2999-01-01"], ["in the future"]),
        (["restore", "--account", "acct", "--as-of", "1999-01-01"], ["no backup run by 1999-01-01"]),
        (["restore", "--account", "acct", "--run", "999"], ["run 999 is not a run of account 'acct'"]),
        (["restore", "--account", "acct", "--message", "xyz"], ["neither a blob id", "nor a placement id"]),
        (["restore", "--account", "acct", "--message", "a" * 64], ["no archived message"]),
        (["restore", "--account", "acct", "--to", "old"], ["can only restore into an IMAP account"]),
        (["restore", "--account", "acct", "--in-place", "--prefix", "X"], ["--in-place and --prefix"]),
        (["restore", "--folder", "INBOX"], ["--account"]),
        (["export", "--account", "nope", "-o", "{tmp}/e1"], ["no account 'nope'"]),
        (["export", "--account", "acct", "--as-of", "13/01/2020", "-o", "{tmp}/e2"], ["expected a date"]),
        (["export", "--account", "acct", "--format", "pdf", "-o", "{tmp}/e3"], ["pdf"]),
        (["export", "--account", "acct", "-o", "{config}"], ["is not an empty directory"]),
        (["import", "{config}", "--account", "acct"], ['protocol = "local"']),
        (["import", "{config}", "--account", "nope"], ["no account named 'nope'"]),
        (["import", "{tmp}/missing", "--account", "old"], ["does not exist"]),
    ],
)
def test_mistakes_get_one_clear_line(setup, args, needles, cli):
    args = [a.format(tmp=setup["tmp"], config=setup["path"]) for a in args]
    result = cli(setup["path"], *args)
    text = result.stderr
    assert result.returncode != 0 and "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith(("archiver:", "Error:"))]
    assert lines, text
    for needle in needles:
        assert needle in text, text


def test_target_login_refused_is_one_problem_line_without_the_password(setup, cli):
    result = cli(setup["path"], "restore", "--account", "acct", "--folder", "INBOX", "--to", "badlogin")
    text = assert_one_clear_line(result, "login refused")
    assert setup["secret"] not in result.stdout + result.stderr
    assert text.count("\n") == 0


def test_export_and_import_cli_round_trip(setup, cli):
    """export --as-of a date that predates the deletion, then import into the local account: deduplicated."""
    out = setup["tmp"] / "export-maildir"
    result = cli(
        setup["path"], "export", "--account", "acct", "--as-of", setup["moment"], "--format", "maildir", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    expected = sum(sum(c.values()) for c in setup["before"].values())
    assert f"exported {expected} message(s) as maildir" in result.stdout
    first = cli(setup["path"], "import", str(out), "--account", "old", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["messages"] == expected and report["blobs_new"] == 0 and report["placements_new"] == expected
    again = cli(setup["path"], "import", str(out), "--account", "old", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["placements_new"] == 0
