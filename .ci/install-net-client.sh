#!/usr/bin/env bash
# The Net API's reference client for the tests: ya-aioclient (its generated `ya_net`
# package is what yapapi and golem-core call) in a venv of its own, <repo>/.tools/ya-client
# (git-ignored). A venv of its own because ya-aioclient pins certifi<2021, which would
# downgrade the node's CA bundle if it shared the node's venv. Idempotent.
set -euo pipefail

YA_AIOCLIENT_VERSION="0.6.4"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${repo_root}/.tools/ya-client"

if [[ -x "${prefix}/bin/python" ]] \
    && "${prefix}/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ya-aioclient') != '${YA_AIOCLIENT_VERSION}')" 2>/dev/null; then
    exit 0
fi

python3 -m venv "${prefix}"
"${prefix}/bin/python" -m pip install -q "ya-aioclient==${YA_AIOCLIENT_VERSION}"
