#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian 12 machine (run as root):
# the OS packages for libvirt/QEMU and for building libvirt-python, then a virtualenv in
# .venv with the project and its test extras. Idempotent: a second run installs nothing new.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

DEB_PACKAGES="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
libvirt-dev pkg-config gcc libc6-dev python3-venv iproute2 procps util-linux"

missing=""
for p in $DEB_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bootstrap: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.mc-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
    echo "bootstrap: installing the project and its test extras into .venv"
    log=$(mktemp /tmp/mc-pip.XXXXXX.log)
    if ! .venv/bin/pip install -e ".[test]" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "bootstrap: pip install failed; full log in $log" >&2
        exit 1
    fi
    rm -f "$log"
    .venv/bin/python -W ignore -c "import libvirt, oslo_messaging, oslo_db, taskflow, cliff"
    touch "$stamp"
fi
