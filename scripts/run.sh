#!/bin/sh
# make run: start proflabd with the lab on and a fresh token, after printing
# the token and ready-to-paste curl commands. Environment overrides work
# (PROFLAB_LISTEN, LAB_TOKEN, LAB_ARTIFACT_DIR, ...).
set -eu
cd "$(dirname "$0")/.."

listen=${PROFLAB_LISTEN:-127.0.0.1:${PORT:-8080}}
if [ -z "${LAB_TOKEN:-}" ]; then
  LAB_TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
fi
host=${listen%:*}
port=${listen##*:}
case "$host" in ""|0.0.0.0) host=127.0.0.1 ;; esac
url="http://$host:$port"

cat <<MSG
proflabd: starting on $listen with the lab enabled.

  export LAB_TOKEN=$LAB_TOKEN

Try, from another terminal:
  curl -s $url/api/health
  curl -s -H "x-lab-token: \$LAB_TOKEN" $url/api/lab/status
  curl -s -X POST -H "x-lab-token: \$LAB_TOKEN" "$url/api/lab/memory-leak?mb=100"
  curl -s -X POST -H "x-lab-token: \$LAB_TOKEN" $url/api/lab/memory-clear
  curl -s -X POST -H "x-lab-token: \$LAB_TOKEN" "$url/api/lab/event-loop-jam?ms=2000" &
  curl -s -w ' %{time_total}s\n' $url/api/health      # waits for the jam
  curl -s $url/metrics
  curl -s -X POST -H "x-lab-token: \$LAB_TOKEN" "$url/api/lab/cpu-profile?seconds=5"
  curl -s -X POST -H "x-lab-token: \$LAB_TOKEN" $url/api/lab/heap-snapshot
  curl -s -H "x-lab-token: \$LAB_TOKEN" $url/api/lab/artifacts

Or with the client, after  export LAB_URL=$url
  build/proflab status
  build/proflab profile --seconds 5 -o cpu.cpuprofile   # open in Chrome DevTools or speedscope
  build/proflab snapshot -o heap.heapsnapshot           # DevTools Memory panel

Logs (JSON lines) follow. Ctrl-C stops the service.

MSG
export LAB_ENABLE=true LAB_TOKEN PROFLAB_LISTEN="$listen"
exec ./build/proflabd
