"""The boto3 side of the S3 store: the client's deadlines and retries, errors as one line, downloaded streams.

The only module of archiver that imports boto3 or botocore (``tests/unit/test_layering.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig

from archiver.config.storage import S3Location
from archiver.errors import ArchiverError, StoreError

RETRY_ATTEMPTS = 8
"""Tries per call (botocore's standard mode: back-off with jitter, at most 20 s between tries)."""
#: What a call of the client may raise: an answer the server gave, or none (timeouts, refused connections).
CLIENT_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_AUTH_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "AuthorizationHeaderMalformed", "403"}
)


def make_client(location: S3Location, workers: int):  # type: ignore[no-untyped-def]
    """A boto3 S3 client with deadlines, retries with back-off, and a connection per upload worker."""
    access_key = location.access_key.resolve() if location.access_key else None
    secret_key = location.secret_key.resolve() if location.secret_key else None
    config = BotoConfig(
        connect_timeout=min(10, location.timeout),
        read_timeout=location.timeout,
        retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
        max_pool_connections=workers + 2,
        # Other S3 servers rarely know AWS's virtual-host names or its newer default checksums.
        s3={"addressing_style": "path" if location.endpoint else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="archiver",
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=location.endpoint,
        region_name=location.region or ("us-east-1" if location.endpoint else None),
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


def error_code(exc: Exception) -> str:
    """The S3 error code of a server's answer (``NoSuchKey``, ``403``…); empty when there was no answer."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def where(location: S3Location) -> str:
    return f"{location} at {location.endpoint or 'AWS S3'}"


def s3_error(exc: Exception, location: S3Location, action: str, key: str | None = None) -> ArchiverError:
    """One line a user can act on, naming the bucket and endpoint (never a credential)."""
    code = error_code(exc)
    what = f"{key} in " if key else ""
    if code == "NoSuchBucket" or (key is None and code in ("404", "NotFound")):
        return StoreError(
            f"bucket {location.bucket} does not exist at {location.endpoint or 'AWS S3'}: "
            "create it, or correct [archive] store"
        )
    if code in _AUTH_CODES:
        return StoreError(
            f"{where(location)} refused archiver's credentials ({code}): check access_key_id and "
            "secret_access_key, and that they may read and write this bucket"
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return StoreError(f"no credentials for {where(location)}: set access_key_id and secret_access_key")
    if isinstance(exc, botocore.exceptions.ClientError):
        message = exc.response.get("Error", {}).get("Message") or code
        return StoreError(f"cannot {action} {what}{where(location)}: {code}: {message}")
    return StoreError(f"cannot {action} {what}{where(location)}: {exc}")


class Body:
    """A downloaded object's stream whose failures (a dropped connection, a read timeout) become ``failed(exc)``."""

    def __init__(self, body: object, failed: Callable[[Exception], ArchiverError]) -> None:
        self._body = body
        self._failed = failed

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read(None if size < 0 else size)  # type: ignore[attr-defined]
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        self._body.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
