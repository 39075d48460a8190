"""What the demo, the tests and the benchmarks share: a private Dovecot and seeded sample mail.

Not used by the product at run time (only ``archiver demo`` starts a sandbox).
"""
