"""Putting archived mail back on an IMAP server: the plan (pure) and the IMAP target (the edge)."""
