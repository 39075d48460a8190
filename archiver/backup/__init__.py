"""One backup run of one account: server -> blob store -> catalog, for IMAP and POP3.

The decision logic (what is new, what moved, what the server deleted) is pure functions
over plain data, unit-tested without a server; the few writes go through the catalog.
"""
