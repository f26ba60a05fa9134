#!/usr/bin/env bash
# Install vault into ./.venv and run its main job on the embedded default: a local
# repository, the SQLite journal, no server. Backs up a demo directory, verifies the
# repository and restores the snapshot beside it. Idempotent: run it again and it makes
# a new (incremental) snapshot of the same directory.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian ships the venv module separately (python3-venv).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-dev
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .

state="${XDG_DATA_HOME:-$HOME/.local/share}/vault"
config="${XDG_CONFIG_HOME:-$HOME/.config}/vault"
mkdir -p -m 700 "$state" "$config"
# The demo repository's passphrase lives in a private file, never in the config.
if [ ! -s "$config/demo-passphrase" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 > "$config/demo-passphrase")
fi
export VAULT_PASSWORD_FILE="$config/demo-passphrase"
export VAULT_REPOSITORY="$state/demo-repo"

demo="$state/demo-data"
if [ ! -d "$demo" ]; then
    mkdir -p "$demo"
    cp -r docs src "$demo/"
    printf '{"app": "demo", "debug": false}\n' > "$demo/settings.json"
fi
date -u +"demo run at %FT%TZ" >> "$demo/runs.log"

vault=.venv/bin/vault
$vault status | grep -q "not initialised" && $vault init
$vault backup --tag demo "$demo"
$vault snapshots --tag demo
$vault verify
rm -rf "$state/demo-restore"
$vault restore latest --target "$state/demo-restore"
diff -r "$demo" "$state/demo-restore$demo" && echo "restored copy is identical to $demo"
$vault status
