"""Recognising "not now" answers (throttling, a download quota) and the back-off that waits them out; pure."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.backup.faults import RunClock
from archiver.backup.throttle import LONGEST_WAIT, MAX_WAITS, ThrottleBackoff
from archiver.errors import ArchiverError, QuotaReached, ServerLimitReached, Throttled
from archiver.sources.limits import MAX_HINT, MAX_REASON, classify, limit_error, retry_after

THROTTLED = [
    "[THROTTLED] Request is throttled",  # Microsoft 365, NO
    "Request is throttled. Please retry later",  # Microsoft 365, BAD
    "Server Unavailable. 15",  # Microsoft 365: 15 is an error code
    "[UNAVAILABLE] Temporary failure, try again",  # RFC 5530
    "* BYE Connection throttled, too busy",
    "Too many requests",
]
QUOTA = [
    "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)",
    "[ALERT] Account exceeded command or bandwidth limits. (Failure)",
    "* BYE [ALERT] Account exceeded command or bandwidth limits",
    "[OVERQUOTA] [THROTTLED] both: the quota wins",  # retrying a quota is pointless
    "Daily download quota exceeded",
]
NEITHER = [
    "[AUTHENTICATIONFAILED] Invalid credentials (Failure)",
    "Too many simultaneous connections. (Failure)",  # a connection limit: not a wait-and-retry on this session
    "[NONEXISTENT] Unknown Mailbox: Foo",
    "Mailbox is full",
    "",
]


@pytest.mark.parametrize("text", THROTTLED)
def test_throttling_answers_are_recognised(text):
    limit = classify(text)
    assert limit is not None and limit.kind == "throttled"
    assert classify(text.encode()) == limit


@pytest.mark.parametrize("text", QUOTA)
def test_quota_answers_are_recognised(text):
    limit = classify(text)
    assert limit is not None and limit.kind == "quota"


@pytest.mark.parametrize("text", NEITHER)
def test_other_refusals_are_not_limits(text):
    assert classify(text) is None
    assert limit_error("acct: h:1", "LOGIN", text) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("[THROTTLED] retry after 30 seconds", 30.0),
        ("Request is throttled. Try again in 2 minutes", 120.0),
        ("[THROTTLED] Suggested Backoff Time: 1500 milliseconds", 1.5),
        ("Retry-After: 20", 20.0),
        ("Server Unavailable. 15", None),  # an error code, never a wait
        ("[THROTTLED] Request is throttled", None),
        ("retry after 99999999 seconds", None),  # nonsense is no hint
    ],
)
def test_a_retry_after_hint_is_read_in_seconds(text, seconds):
    assert retry_after(text) == seconds


def test_the_errors_are_one_line_with_the_servers_words_and_say_what_happens_next():
    quota = limit_error("acct: imap.gmail.com:993", "UID FETCH", "[OVERQUOTA] Account exceeded limits", "gmail")
    assert isinstance(quota, QuotaReached)
    assert str(quota).startswith("acct: imap.gmail.com:993: UID FETCH: Gmail's daily download quota was reached")
    assert "[OVERQUOTA]" in str(quota) and "next run resumes" in str(quota)
    generic = limit_error("acct: h:1", "FETCH", "[OVERQUOTA] no more today")
    assert "the server's download quota was reached" in str(generic)
    throttled = limit_error("acct: h:1", "STATUS", "[THROTTLED] retry after 3 s\r\n\tnoise", "microsoft365")
    assert isinstance(throttled, Throttled) and throttled.retry_after == 3.0
    assert "\n" not in str(throttled) and throttled.reason == "[THROTTLED] retry after 3 s noise"


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_WORDS = st.sampled_from(
    ["[THROTTLED]", "[OVERQUOTA]", "[UNAVAILABLE]", "[ALERT]", "retry after", "try again in", "Retry-After:",
     "backoff", "throttled", "bandwidth limits", "exceeded", "Server Unavailable.", " ", "\r\n", "9" * 30,
     "1e400", "0.5", "-3", "ms", "minutes", "seconds", ":", "\x00", "\ufffd"]
)  # fmt: skip
_ANSWERS = st.one_of(st.text(max_size=300), st.lists(_WORDS, max_size=40).map("".join))


@FUZZ
@given(text=_ANSWERS, provider=st.sampled_from([None, "gmail", "microsoft365", "nonsense"]))
def test_fuzz_any_answer_gives_a_limit_or_none_and_only_the_projects_errors(text, provider):
    limit = classify(text)
    assert limit is None or (limit.kind in ("throttled", "quota") and len(limit.reason) <= MAX_REASON)
    hint = retry_after(text)
    assert hint is None or 0 <= hint <= MAX_HINT
    error = limit_error("acct: h:1", "FETCH", text, provider)
    assert error is None or isinstance(error, ServerLimitReached)
    if error is not None:
        assert isinstance(error, ArchiverError) and "\n" not in str(error) and "\r" not in str(error)


@FUZZ
@given(raw=st.binary(max_size=20_000))
def test_fuzz_raw_bytes_of_any_size_are_classified_without_error(raw):
    classify(raw)


# -- the back-off ---------------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that only the back-off's sleeps move."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def backoff(patience: float = 900, limit: float | None = None, jitter: float = 1.0) -> tuple[ThrottleBackoff, FakeTime]:
    time = FakeTime()
    clock = RunClock(limit, clock=time)
    return ThrottleBackoff(patience, clock, "acct", "microsoft365", sleep=time.sleep, jitter=lambda: jitter), time


def throttled(hint: float | None = None) -> Throttled:
    return Throttled("acct: h:1: FETCH: the server is throttling", hint, "[THROTTLED] Request is throttled")


def test_waits_double_with_jitter_in_the_upper_half_and_are_capped():
    high, time_high = backoff(patience=10**6)
    low, time_low = backoff(patience=10**6, jitter=0.0)
    for _ in range(12):
        high.wait(throttled(), "folder 'INBOX'")
        low.wait(throttled(), "folder 'INBOX'")
    assert time_high.slept[:5] == [1, 2, 4, 8, 16]
    assert time_low.slept[:5] == [0.5, 1, 2, 4, 8]
    assert max(time_high.slept) == LONGEST_WAIT


def test_the_servers_hint_is_waited_as_asked():
    waits, time = backoff()
    waits.wait(throttled(7.5), "folder 'INBOX'")
    assert time.slept == [7.5]


def test_patience_bounds_the_waiting_in_a_row_and_a_command_that_goes_through_resets_it():
    waits, time = backoff(patience=10)
    with pytest.raises(ServerLimitReached) as stopped:
        for _ in range(10):
            waits.wait(throttled(), "folder 'INBOX'")
    assert sum(time.slept) == pytest.approx(10)
    line = str(stopped.value)
    assert line.startswith("acct: the server kept throttling (Microsoft 365 limits")
    assert "[THROTTLED] Request is throttled" in line and "next run continues" in line
    waits.went_through()
    waits.wait(throttled(), "folder 'INBOX'")  # patience is per stretch of refusals, not per run
    assert time.slept[-1] == 1


def test_a_hint_longer_than_the_patience_left_stops_at_once_saying_so():
    waits, time = backoff(patience=60)
    with pytest.raises(ServerLimitReached, match="it asked for 3600 s more"):
        waits.wait(throttled(3600), "folder 'INBOX'")
    assert time.slept == []


def test_zero_patience_stops_at_the_first_throttled_answer():
    waits, time = backoff(patience=0)
    with pytest.raises(ServerLimitReached):
        waits.wait(throttled(), "listing the folders")
    assert time.slept == []


def test_a_wait_that_would_outlast_the_run_time_limit_is_not_begun():
    waits, time = backoff(limit=5)
    with pytest.raises(ServerLimitReached):
        for _ in range(10):
            waits.wait(throttled(), "folder 'INBOX'")
    assert sum(time.slept) < 5


def test_a_server_hinting_zero_cannot_spin_the_run():
    waits, time = backoff()
    with pytest.raises(ServerLimitReached):
        for _ in range(MAX_WAITS + 5):
            waits.wait(throttled(0), "folder 'INBOX'")
    assert len(time.slept) == MAX_WAITS


@pytest.mark.parametrize(
    "wrapped",
    [
        "fetch failed: [THROTTLED] Request is throttled",  # imapclient's tagged NO
        "FETCH command error: BAD [b'[THROTTLED] Request is throttled']",  # imaplib's tagged BAD
        "[THROTTLED]   Request is\r\n throttled",
    ],
)
def test_the_reason_is_the_servers_own_words(wrapped):
    limit = classify(wrapped)
    assert limit is not None and limit.reason == "[THROTTLED] Request is throttled"
