#!/bin/sh
# Install the npm test clients listed in tests/package.json: chrome-remote-interface
# and ws (the inspector tests), speedscope (tests/clients), chrome-devtools-frontend
# and esbuild (DevTools' heap snapshot code, run in node by the top tests), yaml,
# @cdktf/hcl2json, kubernetes-models and @kubernetes/client-node (deploy/'s checks).
set -eu
cd "$(dirname "$0")/../tests"
[ -f package.json ] || exit 0
if [ -d node_modules ] && [ node_modules -nt package.json ]; then exit 0; fi
npm install --no-audit --no-fund --loglevel=error >/dev/null
touch node_modules
