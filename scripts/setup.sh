#!/usr/bin/env bash
# Installs everything archiver needs on a fresh Debian/Ubuntu machine: the
# system packages (Dovecot for the demo and the tests, isync/mbsync, notmuch and
# mu (maildir-utils) for benchmark baselines, zstd, Chromium for the browser tests) and the Python
# package with its test tools into ./.venv.  Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(dovecot-imapd dovecot-pop3d isync notmuch maildir-utils zstd openssl chromium)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    echo "setup: installing system packages: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: ready (.venv)"
