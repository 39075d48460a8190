"""Finding an account's server settings from its e-mail address, the way mail clients do.

Terms used across the package:

* a **preset** (:mod:`.presets`) is what we know about a big provider (Gmail, Microsoft 365, …):
  its servers, how one signs in and its quirks.  ``provider = "gmail"`` in the config uses one;
  discovery recognises one by the address's domain or by the domain's MX hosts.
* an **autoconfig file** (:mod:`.autoconfig`) is the XML a domain publishes for mail clients
  (the Thunderbird ISP database format, ``config-v1.1.xml``).
* **SRV records** (:mod:`.dns_records`) are RFC 6186's ``_imaps._tcp.DOMAIN`` and friends.
* a :class:`~.model.Server` is one way in that one of these offers; :func:`.discover.discover`
  tries them in that order and keeps the first usable one, implicit TLS before STARTTLS, never
  plain text unless asked.

Layering: this package imports neither :mod:`archiver.config` nor :mod:`archiver.sources`; the
config reader imports :mod:`.presets` (``provider = "gmail"``), and what puts a found account to
use sits above both (:mod:`archiver.config.append`, :mod:`archiver.sources.probe`,
``archiver/cli/account.py``).  This ``__init__`` imports nothing, so the config reader does not
pay for ``requests`` or ``dnspython`` on every ``archiver backup``.
"""
