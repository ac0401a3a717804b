#!/usr/bin/env bash
# Golem Base's published Python client (PyPI golem-base-sdk, pinned; the upstream requestor
# reads adverts with it) in a venv of its own, <repo>/.tools/golem-base-sdk (git-ignored),
# or the directory given as $1. Used only by the test that drives our Golem Base test
# double with it (tests/contract/test_golem_base_upstream_sdk.py): it never shares our
# venv (it is asyncio-based and pins its own web3).
# Idempotent: when the pinned version is there it prints nothing and exits 0.
set -euo pipefail

VERSION="0.1.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-${repo_root}/.tools/golem-base-sdk}"

shopt -s nullglob
installed=("${prefix}"/lib/python3*/site-packages/golem_base_sdk-"${VERSION}".dist-info)
if [[ -x "${prefix}/bin/python" && ${#installed[@]} -gt 0 ]]; then
    exit 0
fi
rm -rf "${prefix}"
python3 -m venv "${prefix}"
"${prefix}/bin/python" -m pip install -q --disable-pip-version-check "golem-base-sdk==${VERSION}"
