"""Bytes to fields: what a raw message says (headers, searchable text, a reader's view); pure, no I/O."""
