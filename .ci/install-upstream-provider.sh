#!/usr/bin/env bash
# The upstream provider (PyPI golem-vm-provider, pinned) in a venv of its own,
# <repo>/.tools/upstream-provider (git-ignored), or the directory given as $1. Used only
# by `python -m bench api --against-upstream` (side-by-side numbers); never by the tests
# and never from .ci/run. It cannot share our venv (its pins: fastapi, web3, ...).
# Idempotent: when the pinned version is there it prints nothing and exits 0.
set -euo pipefail

VERSION="0.1.63"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-${repo_root}/.tools/upstream-provider}"

shopt -s nullglob
installed=("${prefix}"/lib/python3*/site-packages/golem_vm_provider-"${VERSION}".dist-info)
if [[ -x "${prefix}/bin/golem-provider" && ${#installed[@]} -gt 0 ]]; then
    exit 0
fi
rm -rf "${prefix}"
python3 -m venv "${prefix}"
"${prefix}/bin/python" -m pip install -q --disable-pip-version-check "golem-vm-provider==${VERSION}"
