"""OAuth2 sign-in for mail accounts (Gmail, Microsoft 365, any provider with standard endpoints).

Terms: the *grant* is what the user approved once (kept as a refresh token in
the account's token file); an *access token* is what a SASL XOAUTH2 /
OAUTHBEARER login presents, valid for about an hour.

Public interface (plain objects; nothing here knows IMAP, the config file or the web):

* :mod:`archiver.oauth.providers` -- ``PROVIDERS`` (``google``, ``microsoft``,
  ``custom``), ``resolve_endpoints(name, protocol=, tenant=, scopes=, authorize_url=,
  token_url=, device_url=, smtp=) -> Endpoints``, ``default_scopes``.
* :class:`archiver.oauth.client.OAuthClient` ``(account, endpoints, client_id,
  client_secret=callable|None, timeout=)`` -- authlib's requests session with a
  timeout on every call; network failures, TLS failures and HTML error pages
  become one-line :class:`~archiver.errors.ArchiverError` subclasses.
* :class:`archiver.oauth.store.TokenFile` ``(path, account)`` with ``load()`` /
  ``save(StoredToken)`` -- JSON, mode 0600, atomic; a warning when it is
  readable by others; ``default_token_path(archive_root, account)``
  (``<archive>/oauth/<account>.json``).
* :mod:`archiver.oauth.tokens` -- the ``TokenSource`` protocol the logins use:
  ``access_token() -> str`` (refreshed before expiry) and ``refused() -> str``
  (the server rejected the token: get a new one, retry once).  Implementations:
  ``RefreshingTokenSource(client, token_file)`` and
  ``CommandTokenSource(account, argv)`` (``token_command``, run without a
  shell like ``password_command``).  A revoked or expired grant raises
  :class:`~archiver.errors.AuthorisationExpired`: "account NAME: the OAuth2
  authorisation was revoked or has expired; re-authorise with `archiver auth NAME`".
* The flows that create a grant, each returning a ``StoredToken`` to save:
  :func:`archiver.oauth.device.device_flow` ``(client, say)`` (RFC 8628) and
  :func:`archiver.oauth.loopback.loopback_flow` ``(client, say, port=0, timeout=)``
  (redirect to 127.0.0.1 with PKCE S256).  ``say`` receives the lines to show.
  For a web page, the device flow also comes in steps: ``begin_device_flow(client)
  -> DeviceChallenge`` (the URL and code to show) and ``poll_device_flow(client,
  challenge) -> StoredToken | None`` (None while pending).

Dependencies: :mod:`archiver.errors`, :mod:`archiver.logs`, the bounded secret
reader, authlib and requests; never the web layer.  This module imports
nothing itself so that importing a submodule stays cheap and cycle-free.
"""
