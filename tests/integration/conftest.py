"""Fixtures of the integration tests defined elsewhere: the web app (tests/webapp.py), loopback autoconfig and
DNS servers (tests/discovery_servers.py), the OAuth2 Dovecot (tests/fixtures/oauth_dovecot.py)."""

from tests.discovery_servers import dns_server, web_server
from tests.fixtures.oauth_dovecot import oauth_authority, oauth_dovecot, oauth_user
from tests.webapp import make_web_app, web_app

__all__ = ["dns_server", "make_web_app", "oauth_authority", "oauth_dovecot", "oauth_user", "web_app", "web_server"]
