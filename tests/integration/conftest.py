"""Fixtures of the integration tests defined elsewhere: the web app (tests/webapp.py), the OAuth2 Dovecot
(tests/fixtures/oauth_dovecot.py)."""

from tests.fixtures.oauth_dovecot import oauth_authority, oauth_dovecot, oauth_user
from tests.webapp import make_web_app, web_app

__all__ = ["make_web_app", "oauth_authority", "oauth_dovecot", "oauth_user", "web_app"]
