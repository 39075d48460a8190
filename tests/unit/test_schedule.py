"""Schedule strings, durations, jitter, the new config sections, persisted scheduler state, freshness."""

from __future__ import annotations

import configparser
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import example, given, settings
from hypothesis import strategies as st

from archiver.catalog import Catalog
from archiver.catalog.schedule_state import load_states, save_finished, save_next_run
from archiver.config import config_from_toml_text
from archiver.config.schedule import (
    DEFAULT_STALE_SECONDS,
    parse_duration,
    parse_schedule,
    plainly_valid,
    stale_after,
)
from archiver.daemon.status import freshness
from archiver.errors import ConfigError
from tests.fixtures.cli import Cli

SOURCE = Path("/srv/archiver/config.toml")
ACCOUNT = """
[[accounts]]
name = "work"
protocol = "imap"
host = "mail.example.org"
username = "alice"
password = "hunter2-literal"
"""
SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


def parse(extra: str, account_extra: str = "", path: str = "/var/lib/archiver"):
    return config_from_toml_text(f'[archive]\npath = "{path}"\n{ACCOUNT}{account_extra}\n{extra}', SOURCE)


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), (" 2 h ", 7200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0m", "5", "2 hours", "-1h", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_interval_schedules() -> None:
    assert parse_schedule("every 30m").interval == 1800
    assert parse_schedule("Every  2h").interval == 7200
    assert parse_schedule("every 1s").kind == "interval"
    assert parse_schedule("off").kind == "off"


def test_cron_weekdays_follow_cron_not_apscheduler() -> None:
    """Cron's 1-5 is Monday to Friday; APScheduler numbers from Monday = 0, so numbers must be translated."""
    schedule = parse_schedule("30 2 * * 1-5")
    trigger = schedule.trigger()
    saturday = datetime(2024, 6, 1, 12, tzinfo=UTC)  # a Saturday
    fire = trigger.get_next_fire_time(None, saturday)
    assert fire is not None and fire.weekday() == 0  # Monday
    sunday_only = parse_schedule("0 9 * * 0").trigger().get_next_fire_time(None, saturday)
    assert sunday_only is not None and sunday_only.weekday() == 6
    assert parse_schedule("0 9 * * 7").cron_fields[4] == "sun"
    assert parse_schedule("*/15 * * * 1,3/2").cron_fields[4] == "mon,wed/2"


def test_cron_aliases_and_intervals() -> None:
    assert parse_schedule("@daily").typical_interval() == 86400
    assert parse_schedule("hourly").typical_interval() == 3600
    assert parse_schedule("0 */4 * * *").typical_interval() == 4 * 3600
    assert parse_schedule("every 45m").typical_interval() == 2700
    assert parse_schedule("off").typical_interval() is None


_number = st.one_of(st.integers(0, 8), st.integers(0, 70)).map(str)  # weekdays' edges as often as minutes'
_weekday = st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun", "xyz", "Mon"])
_cron_part = st.one_of(
    st.just("*"),
    st.builds("*/{}".format, _number),
    _number,
    st.builds("{}-{}".format, _number, _number),
    st.builds("{}-{}/{}".format, _number, _number, _number),
    st.builds("{}/{}".format, _number, _number),
    _weekday,
    st.builds("{}-{}".format, _weekday, _weekday),
    st.builds("{}/{}".format, _weekday, _number),
    st.text("0123456789*-/,abcdefjlmnoprstuvy", max_size=6),
)
_cron_field = st.lists(_cron_part, min_size=1, max_size=3).map(",".join)


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 4), _cron_field)
@example(0, "*/60").via("the edges of each field")
@example(1, "1/23").via("the edges of each field")
@example(2, "0").via("the edges of each field")
@example(3, "12-13").via("the edges of each field")
@example(4, "*/7").via("the edges of each field")
@example(4, "sun-mon").via("the edges of each field")
def test_the_quick_cron_check_never_accepts_what_apscheduler_refuses(position: int, field: str) -> None:
    """Config loading proves a crontab line valid without importing APScheduler; the daemon then runs it with it."""
    fields = tuple(field if number == position else "*" for number in range(5))
    if plainly_valid(fields):
        minute, hour, day, month, dow = fields
        CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=dow)  # must not raise


@pytest.mark.parametrize(
    "line", ["0 */4 * * *", "30 2 * * 1-5", "*/15 8-18 * * mon-fri", "0 0 1,15 * *", "5 4 * 1-6/2 0,6", "@daily"]
)
def test_usual_crontab_lines_are_checked_without_apscheduler(line: str) -> None:
    assert plainly_valid(parse_schedule(line).cron_fields)


@pytest.mark.parametrize("text", ["every", "every 3 fortnights", "0 */4 * *", "61 * * * *", "0 0 * * 9", "fortnightly"])
def test_bad_schedules(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


@pytest.mark.parametrize("spec", ["every 10m", "*/5 * * * *"])
def test_jitter_stays_within_bounds(spec: str) -> None:
    """Every fire time lies in [plain fire time, plain fire time + jitter]."""
    schedule = parse_schedule(spec)
    now = datetime(2024, 6, 1, 12, 0, 1, tzinfo=UTC)
    start = now + timedelta(minutes=1)
    plain = schedule.trigger(0, start=start).get_next_fire_time(None, now)
    assert plain is not None
    fires = [schedule.trigger(120, start=start).get_next_fire_time(None, now) for _ in range(200)]
    assert all(f is not None and plain <= f <= plain + timedelta(seconds=120) for f in fires)
    assert len(set(fires)) > 100  # actually random, not a constant offset


# -- config ------------------------------------------------------------------------------------


def test_account_schedule_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.schedule: .*every 3 fortnights"):
        parse("", 'schedule = "every 3 fortnights"\n')
    with pytest.raises(ConfigError, match=r"scheduler\.default_schedule: invalid crontab line"):
        parse('[scheduler]\ndefault_schedule = "61 * * * *"\n')


def test_scheduler_section_defaults_and_values() -> None:
    config = parse("")
    assert config.scheduler.max_concurrent == 2
    assert config.scheduler.default_schedule == "every 6h"
    config = parse(
        '[scheduler]\ndefault_schedule = "0 */4 * * *"\njitter = "2m"\nmax_concurrent = 3\n'
        'misfire_grace = 600\nstale_after = "1d"\n'
    )
    assert (config.scheduler.jitter, config.scheduler.max_concurrent) == (120, 3)
    assert (config.scheduler.misfire_grace, config.scheduler.stale_after) == (600, 86400)
    with pytest.raises(ConfigError, match=r"scheduler\.jitter: expected a duration"):
        parse('[scheduler]\njitter = "soon"\n')
    with pytest.raises(ConfigError, match=r"scheduler\.max_concurrent: expected an integer from 1 to 64, got 0"):
        parse("[scheduler]\nmax_concurrent = 0\n")
    with pytest.raises(ConfigError, match=r"scheduler\.jiter: unknown key \(did you mean 'jitter'\?\)"):
        parse("[scheduler]\njiter = 5\n")


def test_alerts_section() -> None:
    config = parse(
        '[alerts]\nwebhook_url = "https://hooks.example.org/x"\nhealthcheck_url = "https://hc.example.org/uuid"\n'
        '[alerts.email]\nto = ["ops@example.org"]\nfrom = "archiver@example.org"\nhost = "smtp.example.org"\n'
        'username = "archiver"\npassword_env = "SMTP_PASSWORD"\n'
    )
    email = config.alerts.email
    assert email is not None and (email.port, email.security) == (587, "starttls")
    assert email.password is not None and email.password.kind == "env"
    tls = parse('[alerts.email]\nto = ["a@b.c"]\nfrom = "x@b.c"\nhost = "h"\nsecurity = "tls"\n').alerts.email
    assert tls is not None and tls.port == 465
    with pytest.raises(ConfigError, match=r"alerts\.webhook_url: expected an http:// or https:// URL"):
        parse('[alerts]\nwebhook_url = "ftp://x"\n')
    with pytest.raises(ConfigError, match=r"alerts\.email\.to: missing required key"):
        parse('[alerts.email]\nfrom = "x@b.c"\nhost = "h"\n')
    with pytest.raises(ConfigError, match=r"alerts\.email\.username: missing"):
        parse('[alerts.email]\nto = ["a@b.c"]\nfrom = "x@b.c"\nhost = "h"\npassword = "secret-1"\n')


def test_metrics_section() -> None:
    assert parse("").metrics.enabled and parse("").metrics.token is None
    config = parse('[metrics]\ntoken = "scrape-token-1"\n')
    assert config.metrics.token == "scrape-token-1" and "scrape-token-1" not in repr(config.metrics)
    with pytest.raises(ConfigError, match="at most one of token, token_file"):
        parse('[metrics]\ntoken = "a-token"\ntoken_file = "/etc/archiver/metrics.token"\n')


# -- staleness and persisted state -------------------------------------------------------------


def test_stale_after_defaults() -> None:
    assert stale_after(parse_schedule("every 2h"), None) == 4 * 3600
    assert stale_after(None, None) == DEFAULT_STALE_SECONDS
    assert stale_after(parse_schedule("every 2h"), 600) == 600


def test_schedule_state_persists_and_freshness(tmp_path: Path) -> None:
    config = parse("", 'schedule = "every 1h"\n', path=str(tmp_path))
    catalog = Catalog.open(tmp_path)
    try:
        due = datetime(2030, 1, 1, 4, tzinfo=UTC)
        save_next_run(catalog, "work", "every 1h", due)
        save_finished(catalog, "work", "failed", None, failing=True)
        state = load_states(catalog)["work"]
        assert (state.schedule, state.next_run_at, state.last_status, state.failing) == (
            "every 1h",
            due,
            "failed",
            True,
        )
        assert freshness(catalog, config, "work") == {"last_success": None, "stale_after_seconds": 7200, "stale": True}
        account_id = catalog.ensure_account("work", "imap")
        run_id = catalog.start_run(account_id)
        catalog.finish_run(run_id, "ok", 1, 0, 0)
        fresh = freshness(catalog, config, "work")
        assert fresh["stale"] is False and fresh["last_success"] is not None
    finally:
        catalog.close()


# -- systemd units -----------------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


def test_service_units_are_hardened() -> None:
    for name in ("archiver.service", "archiver-backup@.service"):
        service = _unit(name)["Service"]
        assert service["User"] == "archiver"
        assert service["ProtectSystem"] == "strict"
        assert service["ReadWritePaths"] == "/var/lib/archiver"
        for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "RestrictSUIDSGID", "LockPersonality"):
            assert service[key] == "yes", (name, key)
        assert service["CapabilityBoundingSet"] == ""
        assert service["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
        assert "@system-service" in (SYSTEMD / name).read_text()
    main = _unit("archiver.service")["Service"]
    assert (main["Type"], main["Restart"], main["ExecReload"]) == ("notify", "on-failure", "/bin/kill -HUP $MAINPID")
    assert main["ExecStart"].endswith("archiver daemon")
    assert _unit("archiver-backup@.service")["Service"]["ExecStart"].endswith("daemon --once %i")
    assert _unit("archiver-backup@.timer")["Timer"]["Persistent"] == "true"


# -- archiver status and log lines -------------------------------------------------------------


def test_status_flags_stale_accounts(tmp_path: Path, config_file: Callable[..., Path], cli: Cli) -> None:
    path = config_file(
        '[[accounts]]\nname = "fresh"\nprotocol = "local"\n[[accounts]]\nname = "never"\nprotocol = "local"\n',
        extra='[scheduler]\nstale_after = "1h"\n',
    )
    catalog = Catalog.open(tmp_path / "archive")
    try:
        run_id = catalog.start_run(catalog.ensure_account("fresh", "local"))
        catalog.finish_run(run_id, "ok", 0, 0, 0)
    finally:
        catalog.close()
    result = cli.invoke(path, "status", "--json")
    assert result.exit_code == 0, result.output
    accounts = {a["account"]: a for a in json.loads(result.stdout)["accounts"]}  # stderr: the exposure warning
    assert accounts["fresh"]["stale"] is False and accounts["fresh"]["last_success"]
    assert accounts["never"]["stale"] is True and accounts["never"]["stale_after_seconds"] == 3600
    text = cli.invoke(path, "status").output
    assert "STALE: no successful backup ever (threshold 1 h)" in text
    assert text.count("STALE") == 1


def test_json_log_lines_are_one_object_and_masked() -> None:
    from archiver.logs import JsonFormatter, SecretFilter, register_secret

    register_secret("pw-very-secret-9")
    record = logging.LogRecord(
        "archiver.x", logging.ERROR, __file__, 1, "login %s failed\nretry", ("pw-very-secret-9",), None
    )
    SecretFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "login *** failed\nretry" and entry["level"] == "ERROR" and entry["logger"] == "archiver.x"


def test_a_secret_containing_another_is_masked_whole() -> None:
    from archiver.logs import mask, register_secret

    register_secret("pw-very-secret-21")
    register_secret("secret")  # registered later and shorter: still the longer one wins
    assert mask("login pw-very-secret-21 failed") == "login *** failed"
