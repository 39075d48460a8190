"""The appliance's one long-running process: the scheduler, the web UI beside it, signals and systemd.

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
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from archiver.config import Config, load_config
from archiver.daemon.scheduler import BackupScheduler
from archiver.errors import ArchiverError, ConfigError
from archiver.permissions import protect_new_files

log = logging.getLogger("archiver.daemon")
WEB_THREADS = 4
#: Entry point group through which the web package gives the daemon its app factory, server and
#: closer (``create_app``, ``create_server``, ``close_app``): ``web`` imports ``archiver``, never the reverse.
WEB_GROUP = "archiver.web"


def web_part(name: str) -> Callable[..., Any]:
    """The web package's ``name`` (``create_app``, ``create_server``, ``close_app``) from :data:`WEB_GROUP`."""
    for entry in entry_points(group=WEB_GROUP, name=name):
        return entry.load()
    raise ConfigError(
        f"the web UI is not installed (no {name!r} in the {WEB_GROUP!r} entry points): "
        "reinstall archiver, or run the daemon with --no-web"
    )


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
        self.text = text
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
        self.request_reload()

    def request_reload(self) -> None:
        """Re-read the config in the main loop, as SIGHUP does (the web UI calls it after adding an account)."""
        self._reload = True
        self._wake.set()

    def _status(self) -> str:
        due = [f"{name} {when:%Y-%m-%d %H:%M}" for name, when in sorted(self.scheduler.next_runs().items()) if when]
        return ("next: " + ", ".join(due[:5])) if due else "no account scheduled"

    def _do_reload(self) -> None:
        sd_notify("RELOADING=1")
        try:
            config, text = read_config(self.path)
            new_app = self._make_app(config, text) if self._web is not None else None
            self.scheduler.apply(config, text)
        except ArchiverError as exc:
            log.error("config reload failed, keeping the running config: %s", exc)
        except Exception:
            log.exception("config reload failed, keeping the running config")
        else:
            if self._web is not None and new_app is not None:
                self._old_apps.append(self._web.app)
                self._web.app = new_app
            self.config, self.text = config, text
            log.info("config reloaded path=%s accounts=%d", self.path, len(config.accounts))
        sd_notify(f"READY=1\nSTATUS={self._status()}")

    def _make_app(self, config: Config, text: str) -> Any:
        return web_part("create_app")(config, listen=self.listen, config_text=text, reload_config=self.request_reload)

    def _start_web(self) -> None:
        if not self.config.web.users:
            log.warning("web: no [[web.users]]: nobody can log in; only /metrics is useful")
        listen = self.listen or self.config.web.listen
        host, _, port = listen.rpartition(":")
        self._web = _SwappableApp(self._make_app(self.config, self.text))
        try:
            self._server = web_part("create_server")(self._web, self.config.web, listen, WEB_THREADS)
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
        close_app = web_part("close_app") if self._web is not None else None
        for app in [*self._old_apps, self._web.app if self._web else None]:
            if app is not None and close_app is not None:
                close_app(app)
