#!/usr/bin/env bash
# bench_ingress_tls.sh — the broker's ingress over HTTPS (--tls-cert,
# --tls-key) as a ratio to nginx `return 202` over HTTPS with the same
# certificate, on the same machine in the same run; and, in the same rounds,
# the plain-HTTP pair (the broker's default, with the fast lane) for what TLS
# costs each. See bench/README.md.
#
# wrk (bench/ingress.lua) POSTs one binary-mode CloudEvent per request over
# 64 keep-alive connections from 2 threads (a TLS handshake per connection,
# then requests on it); each measured run follows a 2 s warm-up. A round is
# four runs: nginx TLS, broker TLS, nginx plain, broker plain; even rounds
# run them backwards. The broker's log is the embedded one, durable, fresh
# per run. A CA and a P-256 certificate for 127.0.0.1 are made with openssl.
#
# Environment: OUTPOST (default: build Release into build-bench),
# BENCH_DURATION=seconds per measured run (default 5), BENCH_ROUNDS (default
# 4). Installs wrk and nginx-light when missing (needs root then). Exits
# non-zero when any run failed or the broker answered anything but 2xx.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
duration=${BENCH_DURATION:-5}
rounds=${BENCH_ROUNDS:-4}
warmup=2
connections=64
wrk_threads=2
lua="$here/ingress.lua"

want_whole BENCH_DURATION "$duration"
want_whole BENCH_ROUNDS "$rounds"

bench_setup bench_ingress_tls
bench_tools
bench_outpost

pki=$work/pki
mkdir -p "$pki"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 2 \
  -subj "/CN=bench CA" 2>/dev/null
openssl req "${ec[@]}" -keyout "$pki/srv.key" -out "$pki/srv.csr" -subj /CN=127.0.0.1 2>/dev/null
echo "subjectAltName=IP:127.0.0.1" >"$pki/ext"
openssl x509 -req -in "$pki/srv.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -out "$pki/srv.crt" -days 2 -extfile "$pki/ext" 2>/dev/null

# broker_tls DIR: `outpost broker` over TLS; sets broker_pid and broker_port.
broker_tls() {
  local dir=$1 i
  rm -rf "$dir"
  mkdir -p "$dir"
  : >"$dir/stdout"
  (cd "$dir" && exec "$outpost" broker --listen 127.0.0.1:0 --data "$dir/broker.db" \
    --tls-cert "$pki/srv.crt" --tls-key "$pki/srv.key") >"$dir/stdout" 2>"$dir/stderr" &
  broker_pid=$!
  for ((i = 0; i < 100; i++)); do
    broker_port=$(sed -n 's|^listening on https://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$dir/stdout")
    [ -n "$broker_port" ] && return 0
    sleep 0.1
  done
  echo "  the broker (TLS) did not start:" >&2
  indent <"$dir/stderr" >&2
  return 1
}

stop() { # PID
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

declare -A rps
failed=0
one() { # KIND ROUND
  local kind=$1 r=$2 dir="$work/$1" url rc=0
  case $kind in
  nginx_tls) nginx_up "$dir" 202 "$pki/srv.crt" "$pki/srv.key" &&
    url="https://127.0.0.1:$nginx_port/default/default" ;;
  broker_tls) broker_tls "$dir" && url="https://127.0.0.1:$broker_port/default/default" ;;
  nginx_plain) nginx_up "$dir" 202 && url="http://127.0.0.1:$nginx_port/default/default" ;;
  broker_plain) broker_up "$dir" --data "$dir/broker.db" &&
    url="http://127.0.0.1:$broker_port/default/default" ;;
  esac
  if [ -n "${url:-}" ] && wrk_runs "$url" "$dir/wrk" ingress; then
    rps[$kind.$r]=$(field "$result" rps)
  else
    rps[$kind.$r]=-
    rc=1
  fi
  case $kind in
  nginx*) stop "$nginx_pid" && nginx_pid= ;;
  broker*) stop "$broker_pid" && broker_pid= ;;
  esac
  return "$rc"
}

kinds=(nginx_tls broker_tls nginx_plain broker_plain)
echo "bench_ingress_tls: $outpost, $rounds rounds of ${duration}s runs after ${warmup}s warm-up," \
  "$connections connections, $wrk_threads wrk threads"
for ((r = 1; r <= rounds; r++)); do
  order=("${kinds[@]}")
  ((r % 2 == 0)) && order=(broker_plain nginx_plain broker_tls nginx_tls)
  for k in "${order[@]}"; do
    echo "bench_ingress_tls: round $r: $k"
    one "$k" "$r" || failed=1
  done
done

echo
bench_header
echo "load:   wrk $connections connections, $wrk_threads threads, ${duration}s (after ${warmup}s" \
  "warm-up), one binary-mode CloudEvent per POST; TLS: P-256 certificate, client's choice of suite"
echo
printf '%-6s %12s %12s %7s %12s %12s %7s %9s\n' round "nginx tls" "broker tls" ratio \
  "nginx plain" "broker plain" ratio "tls cost"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f", a / b }'; }
tls_r=() plain_r=()
for ((r = 1; r <= rounds; r++)); do
  t=$(ratio "${rps[broker_tls.$r]}" "${rps[nginx_tls.$r]}")
  p=$(ratio "${rps[broker_plain.$r]}" "${rps[nginx_plain.$r]}")
  c=$(ratio "${rps[broker_tls.$r]}" "${rps[broker_plain.$r]}")
  tls_r+=("$t")
  plain_r+=("$p")
  printf '%-6s %12s %12s %7s %12s %12s %7s %9s\n' "$r" "${rps[nginx_tls.$r]%.*}" \
    "${rps[broker_tls.$r]%.*}" "$t" "${rps[nginx_plain.$r]%.*}" "${rps[broker_plain.$r]%.*}" "$p" "$c"
done
median() { printf '%s\n' "$@" | grep -v '^-$' | sort -g | awk '{ v[NR] = $1 } END {
  if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median ratio: TLS $(median "${tls_r[@]}") (broker over nginx, both HTTPS);" \
  "plain $(median "${plain_r[@]}") (both HTTP); tls cost: the broker's HTTPS events/s over its HTTP ones"
exit "$failed"
