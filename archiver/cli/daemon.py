"""``archiver daemon``: the appliance's one long-running process (scheduler + web UI).

Signals: SIGHUP re-reads the config (an invalid one is logged and the old one
kept, scheduler and web alike); SIGTERM or SIGINT stop the scheduler, SIGTERM
the running backups (what they committed stays; the next start catches up)
and exit within a few seconds.  Under systemd (``Type=notify``) it reports
READY=1, RELOADING=1, STOPPING=1, a STATUS= line and, when ``WatchdogSec=`` is
set, WATCHDOG=1 pings, through ``$NOTIFY_SOCKET`` with the standard library.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from archiver.cli import register
from archiver.config import Config, find_config_path, load_config
from archiver.daemon.scheduler import BackupScheduler, SubprocessRunner
from archiver.errors import ArchiverError, ConfigError
from archiver.logs import setup_logging
from archiver.permissions import protect_new_files

log = logging.getLogger("archiver.daemon")
WEB_THREADS = 4


def sd_notify(message: str) -> bool:
    """Send one sd_notify(3) datagram to ``$NOTIFY_SOCKET``; False when not under systemd (or it failed)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of systemd's ``WatchdogSec`` when it is set for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def read_config(path: Path) -> tuple[Config, str]:
    """The validated config and its text (the children get the text of the config the daemon runs with).

    Also sets the umask the config asks for: the daemon does not go through the
    CLI's config loading, and its backup children inherit it.
    """
    config = load_config(path)
    protect_new_files(config.archive.group_readable)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    return config, text


class _SwappableApp:
    """A WSGI app whose target can be replaced on reload without restarting the HTTP server."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        return self.app(environ, start_response)


class Daemon:
    """Scheduler + optional web UI + signal handling; :meth:`run` returns when stopped."""

    def __init__(self, path: Path, config: Config, text: str, scheduler: BackupScheduler, listen: str | None) -> None:
        self.path = path
        self.config = config
        self.scheduler = scheduler
        self.listen = listen
        self._wake = threading.Event()
        self._stop = False
        self._reload = False
        self._web: _SwappableApp | None = None
        self._server: Any = None
        self._old_apps: list[Any] = []

    def run(self, web: bool) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        if web:
            self._start_web()  # first: a busy port fails the start before any backup begins
        self.scheduler.start()
        sd_notify(f"READY=1\nSTATUS={self._status()}")
        log.info("daemon ready pid=%s accounts=%d web=%s", os.getpid(), len(self.config.accounts), web)
        interval = watchdog_interval()
        try:
            while not self._stop:
                self._wake.wait(timeout=interval or 60.0)
                self._wake.clear()
                if interval:
                    sd_notify("WATCHDOG=1")
                if self._reload and not self._stop:
                    self._reload = False
                    self._do_reload()
        finally:
            sd_notify("STOPPING=1")
            log.info("daemon stopping: running backups are stopped, committed work is kept")
            self.scheduler.stop()
            self._stop_web()
            log.info("daemon stopped")

    def _on_stop(self, signum: int, frame: object) -> None:
        self._stop = True
        self._wake.set()

    def _on_reload(self, signum: int, frame: object) -> None:
        self._reload = True
        self._wake.set()

    def _status(self) -> str:
        due = [f"{name} {when:%Y-%m-%d %H:%M}" for name, when in sorted(self.scheduler.next_runs().items()) if when]
        return ("next: " + ", ".join(due[:5])) if due else "no account scheduled"

    def _do_reload(self) -> None:
        sd_notify("RELOADING=1")
        try:
            config, text = read_config(self.path)
            new_app = self._make_app(config) if self._web is not None else None
            self.scheduler.apply(config, text)
        except ArchiverError as exc:
            log.error("config reload failed, keeping the running config: %s", exc)
        except Exception:
            log.exception("config reload failed, keeping the running config")
        else:
            if self._web is not None and new_app is not None:
                self._old_apps.append(self._web.app)
                self._web.app = new_app
            self.config = config
            log.info("config reloaded path=%s accounts=%d", self.path, len(config.accounts))
        sd_notify(f"READY=1\nSTATUS={self._status()}")

    def _make_app(self, config: Config) -> Any:
        from web import create_app

        return create_app(config, listen=self.listen)

    def _start_web(self) -> None:
        import waitress

        from web.serving import waitress_options

        if not self.config.web.users:
            log.warning("web: no [[web.users]]: nobody can log in; only /metrics is useful")
        host, _, port = (self.listen or self.config.web.listen).rpartition(":")
        self._web = _SwappableApp(self._make_app(self.config))
        try:
            self._server = waitress.create_server(
                self._web, host=host.strip("[]"), port=int(port), threads=WEB_THREADS, ident="archiver",
                **waitress_options(self.config.web),
            )  # fmt: skip
        except OSError as exc:
            raise ConfigError(f"web: cannot listen on {host}:{port}: {exc.strerror or exc} (or use --no-web)") from None
        thread = threading.Thread(target=self._serve, name="web", daemon=True)
        thread.start()
        log.info("web UI listening url=http://%s:%s/", host, port)

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception:
            if not self._stop:
                log.exception("web server stopped")

    def _stop_web(self) -> None:
        if self._server is not None:
            self._server.close()
        for app in [*self._old_apps, self._web.app if self._web else None]:
            extensions = getattr(app, "extensions", {})
            for resource in ("archiver_archive", "archiver_sessions"):
                if extensions.get(resource) is not None:
                    extensions[resource].close()


@click.command()
@click.option("--no-web", is_flag=True, help="Run the scheduler only (no web UI, no /metrics).")
@click.option("--listen", metavar="HOST:PORT", help="Web UI address (default: [web] listen).")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Log line format."
)
@click.option(
    "--once",
    metavar="ACCOUNT",
    help="Run one scheduled backup of ACCOUNT now, with alerts and health-check ping, then exit (systemd timers).",
)
@click.pass_context
def daemon(ctx: click.Context, no_web: bool, listen: str | None, log_format: str, once: str | None) -> None:
    """Run backups on schedule and serve the web UI, until SIGTERM; SIGHUP reloads the config."""
    parent = ctx.parent
    level = "INFO"
    if ctx.obj.debug:
        level = "DEBUG"
    elif parent is not None and parent.get_parameter_source("log_level") != ParameterSource.DEFAULT:
        level = parent.params["log_level"]
    setup_logging(level, log_format)
    path = find_config_path(ctx.obj.config_path)
    config, text = read_config(path)
    if listen is not None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--listen: expected HOST:PORT, got {listen!r}")
    scheduler = BackupScheduler(config, text, SubprocessRunner(level, log_format))
    if once is not None:
        config.account(once)
        outcome = scheduler.run_now(once)
        sys.exit(0 if outcome.status in ("ok", "skipped") else 1)
    Daemon(path, config, text, scheduler, listen).run(web=not no_web)


register(daemon)
