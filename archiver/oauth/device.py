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

from archiver.errors import AuthError, ProtocolError
from archiver.oauth.client import OAuthClient, OAuthError
from archiver.oauth.store import StoredToken

DEFAULT_INTERVAL = 5  # RFC 8628 3.2: when the server names none
SLOW_DOWN_STEP = 5
_DENIED = frozenset({"access_denied", "authorization_declined"})  # the second is Microsoft's older word


def device_flow(
    client: OAuthClient,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> StoredToken:
    """Show the code, poll until the user decides, return the token; each way it can fail is one line."""
    account = client.account
    answer = client.start_device()
    url = answer.get("verification_uri") or answer.get("verification_url")  # Google/old Azure say "url"
    if not isinstance(url, str):
        raise ProtocolError(f"account {account!r}: the device authorization answer names no verification URL")
    interval = max(_seconds(answer.get("interval"), DEFAULT_INTERVAL), 1)  # 0 would hammer the provider
    lifetime = _seconds(answer.get("expires_in"), 900)
    say(f"To authorise account {account}, open {url} in any browser and enter the code {answer['user_code']}")
    complete = answer.get("verification_uri_complete")
    if isinstance(complete, str):
        say(f"(or open {complete} directly)")
    say(f"Waiting for the approval (the code is valid for {max(lifetime // 60, 1)} min)...")
    deadline = time.monotonic() + lifetime
    while True:
        sleep(interval)
        try:
            return StoredToken.from_answer(client.poll_device(answer["device_code"]))
        except OAuthError as exc:
            if exc.error == "authorization_pending":
                pass
            elif exc.error == "slow_down":
                interval += SLOW_DOWN_STEP
            elif exc.error == "expired_token" or exc.error == "bad_verification_code":
                raise AuthError(_expired(account)) from None
            elif exc.error in _DENIED:
                raise AuthError(f"account {account!r}: the authorisation was denied at the provider") from None
            else:
                raise client.refusal(exc, "waiting for the device authorization") from None
        if time.monotonic() > deadline:
            raise AuthError(_expired(account))


def _expired(account: str) -> str:
    return f"account {account!r}: the code expired before it was approved; run `archiver auth {account}` again"


def _seconds(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else default
