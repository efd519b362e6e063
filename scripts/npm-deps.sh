#!/bin/sh
# Install the npm test clients listed in tests/package.json: chrome-remote-interface
# and ws (the inspector tests; with ws's native utf-8-validate and bufferutil),
# speedscope (tests/clients), chrome-devtools-frontend
# and esbuild (DevTools' heap snapshot code, run in node by the top tests), yaml,
# @cdktf/hcl2json, kubernetes-models and @kubernetes/client-node (deploy/'s checks).
# `scripts/npm-deps.sh bench`: instead, memlab for bench/analysis/run.sh into
# bench/analysis/node_modules (bench/analysis/package.json), without its
# install scripts: puppeteer's would download a browser, which reading a
# snapshot file does not use.
set -eu
if [ "${1:-}" = bench ]; then
  cd "$(dirname "$0")/../bench/analysis"
  if [ -d node_modules ] && [ node_modules -nt package.json ]; then exit 0; fi
  PUPPETEER_SKIP_DOWNLOAD=1 npm install --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules
  exit 0
fi
cd "$(dirname "$0")/../tests"
[ -f package.json ] || exit 0
if [ -d node_modules ] && [ node_modules -nt package.json ]; then exit 0; fi
npm install --no-audit --no-fund --loglevel=error >/dev/null
touch node_modules
