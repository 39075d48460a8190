#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the test suite against a real, throwaway Dovecot
# (and SeaweedFS, Chromium) that the fixtures start on loopback.
#   bash scripts/test.sh          everything except the `slow` trials (what CI runs: .ci/run)
#   bash scripts/test.sh --all    everything, the kill trials and big mailboxes included
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
selection=(-m "not slow")
if [[ "${1:-}" == "--all" ]]; then
    selection=()
    shift
fi
bash scripts/setup.sh
.venv/bin/ruff check archiver web tests bench
exec .venv/bin/python -m pytest -q "${selection[@]}" "$@"
