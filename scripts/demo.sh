#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the demo: a throwaway local Dovecot filled
# with sample mail, backed up into ./demo-archive, then status and verify.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/archiver demo --dir ./demo-archive "$@"
