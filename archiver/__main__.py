"""``python -m archiver`` runs the CLI."""

from archiver.cli import main

main()
