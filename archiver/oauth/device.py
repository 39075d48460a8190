"""The device authorization flow (RFC 8628): a URL and a code to enter on any other device.

Why it is the default where allowed (Microsoft): an appliance has no browser,
and this flow needs none on the machine that asks.  Every answer of the token
endpoint while the user is away has one meaning here: ``authorization_pending``
-- keep polling; ``slow_down`` -- poll 5 s less often from now on (3.5);
``expired_token`` -- the code ran out; ``access_denied`` -- the user said no.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from archiver.errors import AuthError, ProtocolError
from archiver.oauth.client import OAuthClient, OAuthError
from archiver.oauth.store import StoredToken

DEFAULT_INTERVAL = 5  # RFC 8628 3.2: when the server names none
SLOW_DOWN_STEP = 5
_DENIED = frozenset({"access_denied", "authorization_declined"})  # the second is Microsoft's older word


@dataclass(repr=False)
class DeviceChallenge:
    """What the user is shown (``verification_uri``, ``user_code``) and what the poller needs.

    Split from the polling loop so a web page can show the code and poll in
    its own rhythm; ``interval`` grows with every ``slow_down``.
    """

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: int
    expires_at: float  # time.monotonic()

    def __repr__(self) -> str:
        return f"DeviceChallenge(user_code={self.user_code!r}, verification_uri={self.verification_uri!r})"


def begin_device_flow(client: OAuthClient) -> DeviceChallenge:
    """Ask the provider for a device code (RFC 8628 3.1)."""
    answer = client.start_device()
    url = answer.get("verification_uri") or answer.get("verification_url")  # Google/old Azure say "url"
    if not isinstance(url, str):
        raise ProtocolError(f"account {client.account!r}: the device authorization answer names no verification URL")
    complete = answer.get("verification_uri_complete")
    return DeviceChallenge(
        device_code=answer["device_code"],
        user_code=answer["user_code"],
        verification_uri=url,
        verification_uri_complete=complete if isinstance(complete, str) else None,
        interval=max(_seconds(answer.get("interval"), DEFAULT_INTERVAL), 1),  # 0 would hammer the provider
        expires_at=time.monotonic() + _seconds(answer.get("expires_in"), 900),
    )


def poll_device_flow(client: OAuthClient, challenge: DeviceChallenge) -> StoredToken | None:
    """One poll: the token once approved, None while pending; a denial or an expired code is one line."""
    account = client.account
    try:
        return StoredToken.from_answer(client.poll_device(challenge.device_code))
    except OAuthError as exc:
        if exc.error == "authorization_pending":
            pass
        elif exc.error == "slow_down":
            challenge.interval += SLOW_DOWN_STEP
        elif exc.error in ("expired_token", "bad_verification_code"):
            raise AuthError(_expired(account)) from None
        elif exc.error in _DENIED:
            raise AuthError(f"account {account!r}: the authorisation was denied at the provider") from None
        else:
            raise client.refusal(exc, "waiting for the device authorization") from None
    if time.monotonic() > challenge.expires_at:
        raise AuthError(_expired(account))
    return None


def device_flow(
    client: OAuthClient,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> StoredToken:
    """Show the code, poll until the user decides, return the token; each way it can fail is one line."""
    challenge = begin_device_flow(client)
    say(
        f"To authorise account {client.account}, open {challenge.verification_uri} in any browser "
        f"and enter the code {challenge.user_code}"
    )
    if challenge.verification_uri_complete:
        say(f"(or open {challenge.verification_uri_complete} directly)")
    minutes = max(int(challenge.expires_at - time.monotonic()) // 60, 1)
    say(f"Waiting for the approval (the code is valid for {minutes} min)...")
    while True:
        sleep(challenge.interval)
        token = poll_device_flow(client, challenge)
        if token is not None:
            return token


def _expired(account: str) -> str:
    return f"account {account!r}: the code expired before it was approved; run `archiver auth {account}` again"


def _seconds(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else default
