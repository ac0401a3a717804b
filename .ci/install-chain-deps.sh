#!/usr/bin/env bash
# Install the chain tools used by golem-actor's contract tests and local mode:
#   anvil  (npm @foundry-rs/anvil)  a local EVM chain
#   solcjs (npm solc)               the Solidity compiler that builds StreamPayment.json
# into <repo>/.tools/node (git-ignored). Idempotent: when the pinned versions are
# already there it prints nothing and exits 0.
set -euo pipefail

ANVIL_VERSION="1.7.1"
SOLC_VERSION="0.8.37"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${repo_root}/.tools/node"

installed_version() {
    # $1 = npm package name; prints the installed version or nothing.
    local manifest="${prefix}/node_modules/$1/package.json"
    if [[ -f "${manifest}" ]]; then
        node -e 'process.stdout.write(require(process.argv[1]).version)' "${manifest}"
    fi
}

if [[ "$(installed_version @foundry-rs/anvil)" == "${ANVIL_VERSION}" \
    && "$(installed_version solc)" == "${SOLC_VERSION}" \
    && -x "${prefix}/node_modules/.bin/anvil" \
    && -x "${prefix}/node_modules/.bin/solcjs" ]]; then
    exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "install-chain-deps: npm not found" >&2; exit 1; }

mkdir -p "${prefix}"
if [[ ! -f "${prefix}/package.json" ]]; then
    printf '{\n  "name": "golem-actor-chain-tools",\n  "private": true\n}\n' > "${prefix}/package.json"
fi

echo "install-chain-deps: installing @foundry-rs/anvil@${ANVIL_VERSION} solc@${SOLC_VERSION} into ${prefix}"
npm install --prefix "${prefix}" --save-exact --no-audit --no-fund --loglevel=error \
    "@foundry-rs/anvil@${ANVIL_VERSION}" "solc@${SOLC_VERSION}"

"${prefix}/node_modules/.bin/anvil" --version >/dev/null
"${prefix}/node_modules/.bin/solcjs" --version >/dev/null
echo "install-chain-deps: done"
