"""Web app fixtures for the integration tests (defined in tests/webapp.py)."""

from tests.webapp import make_web_app, web_app

__all__ = ["make_web_app", "web_app"]
