#!/usr/bin/env bash
# Artifact download throughput: proflabd's GET /api/lab/artifacts/<name> vs
# nginx (1 worker, sendfile on) serving the same file from the same
# directory, on loopback. Issue 5's goal: proflabd / nginx >= 0.9.
#
#   bench/http/download.sh                    # 256 MiB file, 5 rounds x 3 downloads
#   SIZE_MB=1024 ROUNDS=7 bench/http/download.sh
#
# Each round downloads the file DOWNLOADS times from each server (order
# alternating) with curl to /dev/null and takes curl's average speed; the
# file is read once first so both servers read it from the page cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
SIZE_MB=${SIZE_MB:-256}
ROUNDS=${ROUNDS:-5}
DOWNLOADS=${DOWNLOADS:-3}
PROFLABD=${PROFLABD:-build/proflabd}
TOKEN=bench-token-0123456789abcdef
NAME=cpu-20260101T000000.000Z-bench.cpuprofile

# shellcheck source=../lib.sh
. "$root/bench/lib.sh" # die, free_ports
NGINX=$(command -v nginx 2>/dev/null || true)
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
[ -n "$NGINX" ] || die "nginx not found: 'scripts/deps.sh bench' installs nginx-light"
command -v curl >/dev/null 2>&1 || die "curl not found"
[ -x "$PROFLABD" ] || die "$PROFLABD not built: run 'make build'"

tmp=$(mktemp -d /tmp/proflab-dl.XXXXXX)
art=$tmp/artifacts
mkdir -p "$art" "$tmp/nginx"
PD=
NG=
cleanup() {
  local rc=$?
  [ -n "$PD" ] && kill -TERM "$PD" 2>/dev/null && wait "$PD" 2>/dev/null
  [ -n "$NG" ] && kill -TERM "$NG" 2>/dev/null && wait "$NG" 2>/dev/null
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT

head -c $((SIZE_MB * 1048576)) /dev/urandom >"$art/$NAME"
chmod 600 "$art/$NAME"
cat "$art/$NAME" >/dev/null # page cache

read -r P1 P2 < <(free_ports 2)

env LAB_ENABLE=true LAB_TOKEN=$TOKEN LAB_ARTIFACT_DIR="$art" LAB_TASK_ID=bench PROFLAB_REQUEST_LOG=false \
  PROFLAB_LISTEN="127.0.0.1:$P1" "$PROFLABD" >/dev/null 2>"$tmp/proflabd.err" &
PD=$!
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$P2;
    location /api/lab/artifacts/ { alias $art/; default_type application/octet-stream; }
  }
}
EOF
"$NGINX" -p "$tmp/nginx/" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx.err" &
NG=$!

url_p="http://127.0.0.1:$P1/api/lab/artifacts/$NAME"
url_n="http://127.0.0.1:$P2/api/lab/artifacts/$NAME"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null -r 0-0 -H "x-lab-token: $TOKEN" "$url_p" && curl -sf -o /dev/null -r 0-0 "$url_n" && break
  sleep 0.1
done
want=$(sha256sum <"$art/$NAME" | cut -d' ' -f1)
[ "$(curl -sf -H "x-lab-token: $TOKEN" "$url_p" | sha256sum | cut -d' ' -f1)" = "$want" ] || die "proflabd served other bytes"
[ "$(curl -sf "$url_n" | sha256sum | cut -d' ' -f1)" = "$want" ] || die "nginx served other bytes"

speed() { # url [header] -> average MB/s over DOWNLOADS
  local total=0 s i
  for i in $(seq 1 "$DOWNLOADS"); do
    if [ $# -gt 1 ]; then s=$(curl -sf -o /dev/null -H "$2" -w '%{speed_download}' "$1")
    else s=$(curl -sf -o /dev/null -w '%{speed_download}' "$1"); fi
    total=$(awk -v a="$total" -v b="$s" 'BEGIN {print a + b}')
  done
  awk -v t="$total" -v n="$DOWNLOADS" 'BEGIN {printf "%.1f", t / n / 1e6}'
}

echo "artifact download — $(date -u '+%Y-%m-%d %H:%M:%SZ'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  a ${SIZE_MB} MiB file from the page cache, curl to /dev/null, $DOWNLOADS downloads per server per round"
: >"$tmp/rows"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then p=$(speed "$url_p" "x-lab-token: $TOKEN"); n=$(speed "$url_n")
  else n=$(speed "$url_n"); p=$(speed "$url_p" "x-lab-token: $TOKEN"); fi
  printf '  round %d  proflabd %8.1f MB/s   nginx %8.1f MB/s   ratio %.3f\n' "$r" "$p" "$n" "$(awk -v a="$p" -v b="$n" 'BEGIN {print a / b}')"
  echo "$p $n" >>"$tmp/rows"
done
awk '{ q[NR] = $1 / $2 }
  END {
    n = NR
    for (i = 2; i <= n; i++) { t = q[i]; for (j = i - 1; j >= 1 && q[j] > t; j--) q[j + 1] = q[j]; q[j + 1] = t }
    m = (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
    printf "\nproflabd / nginx download throughput: median %.3f (range %.3f-%.3f); goal >= 0.9\n", m, q[1], q[n]
  }' "$tmp/rows"
