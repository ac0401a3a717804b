#!/usr/bin/env bash
# The upstream discovery server (PyPI golem-vm-discovery, pinned) in a venv of its own,
# <repo>/.tools/upstream-discovery (git-ignored), or the directory given as $1. Used only
# by the test that compares our discovery service's answers with upstream's and by
# `python -m bench discovery`; it never shares our venv (its pins are years older).
# Idempotent: when the pinned version is there it prints nothing and exits 0.
set -euo pipefail

VERSION="0.1.25"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-${repo_root}/.tools/upstream-discovery}"

shopt -s nullglob
installed=("${prefix}"/lib/python3*/site-packages/golem_vm_discovery-"${VERSION}".dist-info)
if [[ -x "${prefix}/bin/golem-discovery" && ${#installed[@]} -gt 0 ]]; then
    exit 0
fi
rm -rf "${prefix}"
python3 -m venv "${prefix}"
"${prefix}/bin/python" -m pip install -q --disable-pip-version-check "golem-vm-discovery==${VERSION}"
