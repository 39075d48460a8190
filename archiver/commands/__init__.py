"""One module per CLI command; each registers itself with :mod:`archiver.cli`."""
