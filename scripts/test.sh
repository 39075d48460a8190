#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite against a real,
# throwaway Dovecot that the fixtures start on loopback.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check archiver web tests bench
exec .venv/bin/python -m pytest -q "$@"
