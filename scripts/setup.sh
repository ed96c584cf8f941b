#!/usr/bin/env bash
#
# setup.sh: install everything Phoenix needs on a Debian 12 machine, idempotently.
#   - Debian packages: python3-venv (the virtual environment), and for the local lab
#     docker.io (dockerd + containerd + runc), openssh-server, busybox-static,
#     openssl (the stand-in images serve TLS with it), docker-registry (the lab
#     registry that serves the stand-in images under their real names),
#     iproute2, util-linux (nsenter/unshare), procps
#   - a virtual environment in .venv with Phoenix and its test dependencies
# A second run installs nothing and takes about a second.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

APT_PACKAGES=(python3 python3-venv python3-pip docker.io openssh-server busybox-static openssl docker-registry iproute2 util-linux procps)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing Debian packages: ${missing[*]}" >&2
        echo "setup: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The Docker engine is started per lab VM by Phoenix, never as a system service here.
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # On a systemd machine the package starts a registry of its own on :5000 of every
    # address; the lab runs its own on the lab bridge's address (which that one would
    # block) and needs none system-wide.  Only one that this run installed is stopped.
    if [[ " ${missing[*]} " == *" docker-registry "* && -d /run/systemd/system ]]; then
        echo "setup: disabling the docker-registry system service (the lab runs its own)"
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
fi

PYTHON=${PHOENIX_PYTHON:-python3}
stamp=.venv/.phoenix-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "setup: creating the virtual environment .venv"
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    # Dependencies only, read from pyproject.toml (the one list): Phoenix itself runs
    # from this checkout (tasks.py, bin/phoenix), so it is not installed as a package.
    # The build requirements too: the install test builds Phoenix offline with them
    # (pip install --no-build-isolation).
    .venv/bin/python - <<'PY' > .venv/requirements.txt
import tomllib
pyproject = tomllib.load(open("pyproject.toml", "rb"))
project = pyproject["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]
                + pyproject["build-system"]["requires"]))
PY
    .venv/bin/python -m pip install -q -r .venv/requirements.txt
    echo "$want" > "$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), $(.venv/bin/inv --version | head -1))"
