"""Archived mail as files other programs read (mbox, Maildir, .eml) and back in (import)."""
