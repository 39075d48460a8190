"""Fixtures for the integration tests: the web app (tests/webapp.py), loopback autoconfig and DNS servers
(tests/discovery_servers.py)."""

from tests.discovery_servers import dns_server, web_server
from tests.webapp import make_web_app, web_app

__all__ = ["dns_server", "make_web_app", "web_app", "web_server"]
