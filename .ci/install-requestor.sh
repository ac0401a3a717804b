#!/usr/bin/env bash
# The requestor users already have (PyPI request-vm-on-golem, pinned) in a venv of its own,
# <repo>/.tools/requestor (git-ignored), or the directory given as $1, with
# golem-streaming-abi pinned to 0.1.1: its 0.1.2 changed createStream to 8 arguments, which
# breaks the requestor's 4-argument call. Used only by the acceptance tests that run the
# unchanged `golem` CLI against our node and discovery services; it never shares our venv.
# Idempotent: when the pinned versions are there it prints nothing and exits 0.
set -euo pipefail

VERSION="0.1.58"
ABI_VERSION="0.1.1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-${repo_root}/.tools/requestor}"

shopt -s nullglob
installed=("${prefix}"/lib/python3*/site-packages/request_vm_on_golem-"${VERSION}".dist-info)
abi=("${prefix}"/lib/python3*/site-packages/golem_streaming_abi-"${ABI_VERSION}".dist-info)
if [[ -x "${prefix}/bin/golem" && ${#installed[@]} -gt 0 && ${#abi[@]} -gt 0 ]]; then
    exit 0
fi
rm -rf "${prefix}"
python3 -m venv "${prefix}"
"${prefix}/bin/python" -m pip install -q --disable-pip-version-check \
    "request-vm-on-golem==${VERSION}" "golem-streaming-abi==${ABI_VERSION}"
