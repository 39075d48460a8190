"""Sync fidelity: flag history, server deletions, fingerprint re-mapping, Gmail labels, point-in-time views.

The decision logic here is pure functions over plain data (unit-tested without a
server); the few SQL statements these features need live in the modules that
own them and take a :class:`archiver.catalog.Catalog` or its connection.
"""
