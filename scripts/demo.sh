#!/usr/bin/env bash
# The README's demo, step by step, against a running `outpost run` (start it
# first: `bash scripts/run.sh`). Each step prints the command it runs and what
# came back, and stops with an error when the platform did not do what the
# step says. tests/run/test_run.py runs exactly this script.
#
#   bash scripts/demo.sh            # the whole demo (about a minute and a half)
#
# Environment: OUTPOST_DATA (default outpost-data), OUTPOST_PORT_BASE (default
# 8080), OUTPOST (the binary; default build/cmd/outpost), DEMO_TEMPLATE
# (default c-lab).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${OUTPOST_DATA:-outpost-data}
BASE=${OUTPOST_PORT_BASE:-8080}
OUTPOST=${OUTPOST:-build/cmd/outpost}
TEMPLATE=${DEMO_TEMPLATE:-c-lab}
BROKER=http://127.0.0.1:$BASE
DETECTOR=http://127.0.0.1:$((BASE + 5))
TAIL=http://127.0.0.1:$((BASE + 9))
LABS=http://127.0.0.1:$((BASE + 10))

bold=$'\e[1m' off=$'\e[0m'
[ -t 1 ] || bold='' off=''
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
fail() {
  echo "demo: FAILED: $*" >&2
  exit 1
}
# Prints a command as a newcomer would type it (tokens as $VARIABLES), runs it.
run() {
  local a shown=''
  for a in "$@"; do
    if [[ $a == *"$ALICE"* || $a == *"$ADMIN"* ]]; then
      a=${a//$ALICE/\$ALICE}
      a="\"${a//$ADMIN/\$ADMIN}\"" # the variable, in double quotes
    elif [[ $a == *[!A-Za-z0-9_./:=@%+,-]* ]]; then
      a="'${a//\'/\'\\\'\'}'"
    fi
    shown+=" $a"
  done
  printf '$%s\n' "$shown" >&2
  "$@"
}
# A Python expression over the JSON document v on stdin: json 'v["name"]'
json() {
  python3 -c 'import json,sys; v=json.load(sys.stdin); r='"$1"'
print(json.dumps(r) if isinstance(r,(dict,list,bool)) or r is None else r)'
}
events() { "$OUTPOST" events --data "$DATA" --server "$TAIL" --no-follow "$@"; }
# Waits (at most $1 s) until the tail holds an event of type $2 whose line matches $3.
wait_event() {
  local until=$((SECONDS + $1))
  while ((SECONDS < until)); do
    if events -n 1000 --type "$2" | grep -- "$3" >/dev/null; then
      events -n 1000 --type "$2" | grep -- "$3" | tail -n 1
      return 0
    fi
    sleep 1
  done
  return 1
}

[ -r "$DATA/tokens" ] || fail "no $DATA/tokens: is \`outpost run\` running (bash scripts/run.sh)?"
ALICE=$(awk '$1 == "alice" {print $2}' "$DATA/tokens")
ADMIN=$(cat "$DATA/admin-token")
curl -sf "$LABS/healthz" >/dev/null || fail "the Labs API does not answer on $LABS"

step "1. The lab templates (as tenant alice; her token is in $DATA/tokens)"
echo "ALICE=\$(awk '\$1 == \"alice\" {print \$2}' $DATA/tokens)"
run curl -s -H "Authorization: Bearer $ALICE" "$LABS/v1/labs" | python3 -m json.tool
echo

step "2. Claim an environment of $TEMPLATE"
claim=$(run curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $ALICE" \
  "$LABS/v1/labs/$TEMPLATE/environments")
code=${claim##*$'\n'}
claim=${claim%$'\n'*}
echo "$claim" | python3 -m json.tool
NAME=$(echo "$claim" | json 'v["name"]')
case $code in
201) echo "201: a warm environment, ready at once" ;;
202)
  echo "202: none was warm (the pool scales to zero), so this is a cold start; its progress:"
  progress=$(echo "$claim" | json 'v["progress"]')
  run curl -s -N -H "Authorization: Bearer $ALICE" "$LABS$progress"
  ;;
*) fail "claim answered $code" ;;
esac
status=$(curl -s -H "Authorization: Bearer $ALICE" "$LABS/v1/labs/$TEMPLATE/environments/$NAME" |
  json 'v["status"]')
[ "$status" = ready ] || fail "environment $NAME is $status, not ready"
echo "environment $NAME is ready"

exec_in() {
  local body
  body=$(python3 -c 'import json,sys; print(json.dumps({"argv": sys.argv[1:]}))' "$@")
  run curl -s -X POST -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \
    -d "$body" "$LABS/v1/labs/$TEMPLATE/environments/$NAME/exec"
}

step "3. Run a command in it: compile and run a C program (as the template's user, not root)"
out=$(exec_in sh -c 'printf "#include <stdio.h>\nint main(void) { puts(\"hello from the lab\"); }\n" > /tmp/hello.c && gcc -o /tmp/hello /tmp/hello.c && /tmp/hello && echo "as uid $(id -u)"')
echo "$out" | python3 -m json.tool
[ "$(echo "$out" | json 'v["exit_code"]')" = 0 ] || fail "the program did not run"
[[ $(echo "$out" | json 'v["stdout"]') == *"hello from the lab"* ]] || fail "no greeting"
[[ $(echo "$out" | json 'v["stdout"]') == *"as uid 1000"* ]] || fail "not run as the template's user (runAsUser: 1000)"

step "4. Run what the template forbids: perl, and reading /etc/shadow"
bpf=$(curl -s "$DETECTOR/healthz" | json 'v.get("bpf", False)' 2>/dev/null || echo false)
if [ "$bpf" != true ]; then
  echo "The detector's eBPF side is off on this machine (see $DATA/logs/detector.log):"
  echo "nothing is watched or killed here, so this step is skipped."
else
  for cmd in "perl -e print(1)" "cat /etc/shadow"; do
    # shellcheck disable=SC2086 # the words of $cmd are the argv
    out=$(exec_in $cmd)
    echo "$out"
    code=$(echo "$out" | json 'v["exit_code"]')
    [ "$code" = 137 ] || fail "'$cmd' was not killed (exit code $code)"
    echo "-> killed in the kernel (exit code 137: SIGKILL) before it could do anything"
  done
  echo "The detector's events about it, as the broker delivered them:"
  wait_event 20 dev.outpost.process "action=killed" >/dev/null ||
    fail "no event with action=killed reached the broker"
  run "$OUTPOST" events --data "$DATA" --server "$TAIL" --no-follow -n 3 --type dev.outpost.process.exec
fi

step "5. A tenant's own event, through the detector's tenant endpoint"
run curl -s -X POST -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \
  -d '{"type": "exercise.done", "subject": "hello-world", "score": 10}' \
  "$DETECTOR/v1/tenants/alice/events"
echo
wait_event 20 dev.outpost.tenant.exercise.done hello-world >/dev/null ||
  fail "the tenant event did not reach the broker"

step "6. Watch the CloudEvents flow (in another terminal: $OUTPOST events --data $DATA)"
run "$OUTPOST" events --data "$DATA" --server "$TAIL" --no-follow -n 15
kafka=$(curl -s "$BROKER/healthz" | json 'v.get("kafka")')
if [ "$kafka" != null ] && command -v kcat >/dev/null; then
  echo "The broker's topic as a Kafka consumer reads it:"
  run kcat -C -b "$kafka" -t knative-broker-default-default -o -3 -e -q \
    -f '%k %h\n' | cut -c1-200
fi

step "7. Leave it idle: the environment is reclaimed after its idle timeout (30 s)"
t0=$SECONDS
line=$(wait_event 120 dev.outpost.environment.reclaimed "$NAME") ||
  fail "$NAME was not reclaimed within 120 s"
echo "$line"
echo "-> reclaimed (30 s after its last activity, the exec of step 4; this step waited $((SECONDS - t0)) s)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ALICE" \
  "$LABS/v1/labs/$TEMPLATE/environments/$NAME")
[ "$code" = 404 ] || fail "GET of the reclaimed environment answered $code, not 404"

step "8. And with no demand, the pool goes to zero (keep-alive 30 s)"
until=$((SECONDS + 150))
while :; do
  warm=$(curl -s -H "Authorization: Bearer $ALICE" "$LABS/v1/labs" |
    json "[t['warm'] for t in v['templates'] if t['name'] == '$TEMPLATE'][0]")
  # The pool's latest word on the template: its target is 0 (no demand).
  target=$(events -n 1000 --json --type dev.outpost.pool.scaled |
    python3 -c "import json,sys
t=[e['data'] for e in map(json.loads, sys.stdin) if e['data'].get('template') == '$TEMPLATE']
print(t[-1]['new'] if t else '')")
  [ "$warm" = 0 ] && [ "$target" = 0 ] && break
  ((SECONDS < until)) || fail "the pool of $TEMPLATE still holds $warm warm environment(s)"
  sleep 2
done
run "$OUTPOST" events --data "$DATA" --server "$TAIL" --no-follow -n 3 --type dev.outpost.pool.scaled
echo "-> $TEMPLATE has 0 warm environments: the next claim is a cold start again"

step "Done: the demo ran end to end"
