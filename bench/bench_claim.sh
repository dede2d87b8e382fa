#!/usr/bin/env bash
# bench_claim.sh — the warm pool measured through the Labs REST API, on
# podman: claim latency warm beside cold in the same run (a ratio), the
# reclaim delay past the idle timeout, and the pool's size over time under a
# claim rate that changes in phases. See bench/README.md.
#
# It runs the real thing: an `outpost broker` (the pool's events come back
# to the measuring script through a trigger), and `outpost post --tier
# cluster`, which starts its node post and ns post, with LabTemplates and
# tenants' tokens written here. bench/claim_load.py does the measuring over
# HTTP; this script starts, checks and cleans up.
#
#   usage: bench_claim.sh [--quick] [--claims N] [--warm N] [--reclaims N]
#                         [--idle-timeout S] [--out DIR]
#
#   --quick          tens of seconds: 10 claims each way, 3 reclaims, a short
#                    load schedule (what the CTest smoke entry runs)
#   --claims N       warm claims, and cold claims, for the latency (default 100)
#   --warm N         the warm template's pool: min = max = N (default 2)
#   --reclaims N     environments left to the idle timeout (default 6)
#   --idle-timeout S their template's idleTimeout in seconds (default 5)
#   --out DIR        where the CSV and the events go (default
#                    build-bench/bench_claim, kept after the run)
#
# Environment: OUTPOST=path to an outpost binary (default: build Release into
# build-bench). Needs root, podman and the lab image
# (scripts/setup_podman.sh): exits 77 (skipped) without them; starts the
# podman API service when nothing answers on /run/podman/podman.sock (and
# leaves it running, as the tests do). Everything runs in a namespace of its
# own (bench-claim-<random>); at exit, whatever happened, the posts of the
# run are stopped and every container of that namespace is removed. Exit 1
# when a claim, a release or the clean-up failed.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

quick=0
claims=
claims_default=100
warm=2
reclaims=6
idle_s=5
out=
while (($#)); do
  case $1 in
  --quick) quick=1 ;;
  --claims | --warm | --reclaims | --idle-timeout | --out)
    (($# >= 2)) || {
      echo "bench_claim: $1 wants a value" >&2
      exit 2
    }
    case $1 in
    --claims) claims=$2 ;;
    --warm) warm=$2 ;;
    --reclaims) reclaims=$2 ;;
    --idle-timeout) idle_s=$2 ;;
    --out) out=$2 ;;
    esac
    shift
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "bench_claim: unknown argument '$1' (see --help)" >&2
    exit 2
    ;;
  esac
  shift
done
if ((quick)); then
  # --quick --claims 30 is allowed: only the claims can be given.
  claims_default=10
  reclaims=3
  idle_s=3
fi
claims=${claims:-$claims_default}
want_whole --claims "$claims"
want_whole --warm "$warm"
want_whole --reclaims "$reclaims"
want_whole --idle-timeout "$idle_s"
((claims <= 999 && reclaims <= 40)) || {
  echo "bench_claim: at most 999 claims and 40 reclaims" >&2
  exit 2
}
out=${out:-$top/build-bench/bench_claim}

# --- what it needs -------------------------------------------------------------

skip() {
  echo "bench_claim: skipped: $*" >&2
  exit 77
}
image=localhost/outpost-lab-c:latest
[ "$(id -u)" = 0 ] || skip "needs root (podman and the lab environments)"
command -v podman >/dev/null 2>&1 || skip "podman is not installed (scripts/setup_podman.sh)"
python=/usr/bin/python3
[ -x "$python" ] || skip "needs $python"
podman image exists "$image" || skip "no $image (scripts/setup_podman.sh builds it)"
bash "$top/scripts/podman_service.sh" start

bench_setup bench_claim
bench_outpost

ns=bench-claim-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
node=$ns-node
state=$work/state
cluster_pid=
load_pid=

# The `outpost post` processes of this run (found by their --state-dir, so
# that children a crashed parent left behind are found too), one pid a line.
run_posts() {
  local f pid args
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    { args=$(tr '\0' ' ' <"$f"); } 2>/dev/null || continue # gone meanwhile
    [[ $args == *" post "*"--state-dir $state"* ]] && echo "$pid"
  done
  return 0
}

# Containers of this run's namespace, one id a line.
run_containers() {
  podman ps -aq --filter "label=outpost.runtime/namespace=$ns" 2>/dev/null || true
}

# stop_pid PID: SIGTERM, then up to 30 s for it to exit; 0 when it did
# (reaped when it is our child), 1 when it is still running.
stop_pid() {
  local i
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# claim_cleanup: the posts (SIGTERM to the cluster post stops its subtree;
# whatever is left is killed by pid), then the environments — the node post
# leaves them running when it stops, by design — then lib.sh's clean-up
# (the broker, the working directory).
claim_cleanup() {
  local pid ids
  if [ -n "$load_pid" ]; then
    kill -TERM "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
  fi
  if [ -n "$cluster_pid" ]; then
    stop_pid "$cluster_pid" || kill -KILL "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
    cluster_pid=
  fi
  for pid in $(run_posts); do kill -KILL "$pid" 2>/dev/null || true; done
  ids=$(run_containers)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    podman rm -f -t 0 $ids >/dev/null 2>&1 || true
  fi
  bench_cleanup
}
trap claim_cleanup EXIT

# --- the platform -------------------------------------------------------------

template() { # NAME POOL-MIN POOL-MAX [IDLE-TIMEOUT]
  cat <<EOF
---
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {name: $1}
spec:
  image: $image
  command: [sleep, infinity]
  limits: {pids: 64, memory: 128Mi}
  idleTimeout: ${4:-PT30M}
  pool: {min: $2, max: $3}
EOF
}
{
  template warm "$warm" "$warm"
  # A template's pool keeps at least one environment warm once it has been
  # claimed (pool.max is at least 1, and the predictor's target at least 1
  # for a minute after a claim): the only claim sure to be cold is the first
  # of a template, so each cold claim has a template of its own.
  for ((i = 1; i <= claims; i++)); do template "$(printf 'cold-%03d' "$i")" 0 1; done
  template idle 1 1 "PT${idle_s}S"
  template load 0 10
} >"$work/labs.yaml"
{
  echo "bench $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  for ((i = 1; i <= 40; i++)); do
    printf 's%02d %s\n' "$i" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  done
} >"$work/tokens"

echo "bench_claim: $outpost, namespace $ns"
broker_up "$work/broker" --data "$work/broker/broker.db" || exit 1

ports=()
while ((${#ports[@]} < 3)); do
  p=$(free_port) || {
    echo "bench_claim: no free port" >&2
    exit 1
  }
  [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
cport=${ports[0]} nport=${ports[1]} nsport=${ports[2]}
# A file, not a pipe: children outlive a killed parent and must never block
# on a pipe nobody reads.
"$outpost" post --tier cluster --listen "127.0.0.1:$cport" --node-listen "127.0.0.1:$nport" \
  --ns-port "$nsport" --node "$node" --namespace "$ns" --state-dir "$state" \
  --config "$work/labs.yaml" --tokens-file "$work/tokens" --quota 3 --max-envs 64 \
  --broker-url "http://127.0.0.1:$broker_port/default/default" >"$work/posts.log" 2>&1 &
cluster_pid=$!
for port in "$cport" "$nport" "$nsport"; do
  for ((i = 0; i < 300; i++)); do
    kill -0 "$cluster_pid" 2>/dev/null || break
    http_get "$port" /healthz 2>/dev/null | head -1 | grep -q ' 200' && break
    sleep 0.1
  done
  if ! http_get "$port" /healthz 2>/dev/null | head -1 | grep -q ' 200'; then
    echo "bench_claim: the posts did not start (port $port):" >&2
    indent <"$work/posts.log" >&2
    exit 1
  fi
done

# --- the measurements ---------------------------------------------------------

mkdir -p "$out"
args=(--cluster-port "$cport" --node-port "$nport" --broker-port "$broker_port" --namespace "$ns"
  --tokens-file "$work/tokens" --out "$out" --claims "$claims" --warm "$warm"
  --reclaims "$reclaims")
((quick)) && args+=(--quick)
echo
bench_header
echo "nodes:  one (the cluster post's own node post), podman $(podman version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), runc"
rc=0
# In the background: a signal's trap runs at once while the script waits.
"$python" "$here/claim_load.py" "${args[@]}" &
load_pid=$!
wait "$load_pid" || rc=$?
load_pid=

# --- clean-up, checked ----------------------------------------------------------

if stop_pid "$cluster_pid"; then
  st=0
  wait "$cluster_pid" || st=$?
  cluster_pid=
  if ((st != 0)); then
    echo "bench_claim: the cluster post exited $st after SIGTERM" >&2
    rc=1
  fi
else
  echo "bench_claim: the cluster post did not stop within 30 s of SIGTERM" >&2
  rc=1
fi
left=$(run_posts)
if [ -n "$left" ]; then
  echo "bench_claim: posts left running after the cluster post stopped: $left" >&2
  rc=1
fi
n_left=$(run_containers | wc -l)
cp "$work/posts.log" "$out/posts.log" 2>/dev/null || true
claim_cleanup
trap - EXIT
if [ -n "$(run_containers)" ]; then
  echo "bench_claim: containers of $ns are still there after podman rm" >&2
  rc=1
fi
echo
echo "bench_claim: stopped the posts; removed the $n_left environments they left (warm pools" \
  "are left running by design); CSV and events in $out"
if ((rc == 77)); then rc=1; fi
exit "$rc"
