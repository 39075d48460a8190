"""Login hardening (issue 12 items 6, 7): no user enumeration by timing; a back-off that never locks out for good."""

from __future__ import annotations

import statistics
import time

from argon2 import PasswordHasher

from tests.fixtures.web import form_token, log_in
from web.throttle import FREE_FAILURES, MAX_DELAY, LoginThrottle

# The cost `archiver serve --hash-password` uses, so the gap is the one users would see.
REAL_USERS = f"""
[[web.users]]
name = "bob"
password_hash = "{PasswordHasher().hash("bob-pass")}"
accounts = ["alpha"]
"""


def _login_seconds(app, name: str, round_no: int) -> float:
    app.extensions["archiver_login_throttle"] = LoginThrottle()  # timing only: no back-off in the way
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.0.{len(name)}.{round_no}"
    start = time.perf_counter()
    assert log_in(client, name, f"wrong-{round_no}").status_code == 401
    return time.perf_counter() - start


def test_unknown_user_costs_as_much_as_a_known_one(make_web_app):
    """Medians of interleaved tries, so a load change on the shared machine hits both names alike."""
    app = make_web_app(users=REAL_USERS)
    _login_seconds(app, "bob", 0)  # warm up
    known, unknown = [], []
    for round_no in range(9):
        known.append(_login_seconds(app, "bob", round_no))
        unknown.append(_login_seconds(app, "nobody-here", round_no))
    assert statistics.median(unknown) >= 0.5 * statistics.median(known), (unknown, known)


class Clock:
    """Monotonic time the test moves forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_right_password_gets_in_after_the_wait_even_under_attack(web_app):
    clock = Clock()
    web_app.extensions["archiver_login_throttle"].clock = clock
    attacker = _client(web_app, "203.0.113.9")
    failures = 0
    while failures < 30:  # an attacker hammering bob's name for half an hour, as fast as the back-off allows
        response = log_in(attacker, "bob", "guess")
        assert response.status_code in (401, 429)
        if response.status_code == 429:
            clock.now += float(response.headers["Retry-After"])
        failures += response.status_code == 401
    refused = log_in(_client(web_app, "198.51.100.7"), "bob", "bob-pass")
    assert refused.status_code == 429  # a new browser waits for bob's back-off: at most a minute
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= MAX_DELAY and f"Wait {wait} s" in refused.get_data(as_text=True)
    clock.now += wait
    assert log_in(_client(web_app, "198.51.100.7"), "bob", "bob-pass").status_code == 302


def test_known_browser_is_not_slowed_by_others_failures(web_app):
    clock = Clock()
    web_app.extensions["archiver_login_throttle"].clock = clock
    bobs_browser = _client(web_app, "198.51.100.7")
    assert log_in(bobs_browser, "bob", "bob-pass").status_code == 302
    bobs_browser.post("/logout", data={"csrf_token": bobs_browser.get_cookie("session") and _csrf(bobs_browser)})
    attacker = _client(web_app, "203.0.113.9")
    for _ in range(FREE_FAILURES["user"] + 3):
        log_in(attacker, "bob", "guess")
    assert log_in(attacker, "bob", "bob-pass").status_code == 429  # the attacker's own back-off
    assert log_in(bobs_browser, "bob", "bob-pass").status_code == 302  # bob's browser logs in at once


def test_back_off_grows_and_the_password_is_not_checked_meanwhile(web_app):
    clock = Clock()
    web_app.extensions["archiver_login_throttle"].clock = clock
    client = _client(web_app, "203.0.113.9")
    for _ in range(FREE_FAILURES["user"]):
        assert log_in(client, "bob", "guess").status_code == 401
    waits = []
    for _ in range(8):
        blocked = log_in(client, "bob", "bob-pass")  # right password, but inside the back-off: not even checked
        assert blocked.status_code == 429
        waits.append(int(blocked.headers["Retry-After"]))
        clock.now += waits[-1]
        assert log_in(client, "bob", "guess").status_code == 401
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    clock.now += 60
    assert log_in(client, "bob", "bob-pass").status_code == 302


def test_one_client_trying_many_names_backs_off(web_app):
    clock = Clock()
    web_app.extensions["archiver_login_throttle"].clock = clock
    client = _client(web_app, "203.0.113.9")
    for i in range(FREE_FAILURES["client"]):
        assert log_in(client, f"user{i}", "guess").status_code == 401
    assert log_in(client, "root", "root-pass").status_code == 429
    assert log_in(_client(web_app, "198.51.100.7"), "root", "root-pass").status_code == 302


def _csrf(client) -> str:
    return form_token(client, "/")


def test_throttle_memory_is_bounded():
    from web import throttle

    clock = Clock()
    limiter = LoginThrottle(clock)
    for i in range(3 * throttle.MAX_KEYS):  # a spray of made-up user names from made-up addresses
        clock.now += 0.001
        limiter.failed([("client", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"), ("user", f"name{i}")])
    assert len(limiter._keys) <= throttle.MAX_KEYS
    for _ in range(FREE_FAILURES["user"]):  # the newest keys are kept: a fresh failure still counts
        limiter.failed([("user", "bob")])
    assert limiter.wait_for([("user", "bob")]) > 0
