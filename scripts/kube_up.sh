#!/usr/bin/env bash
# Starts a real Kubernetes API server for the tests: etcd and kube-apiserver
# (built by scripts/setup_kube.sh) on 127.0.0.1, with everything they need
# generated under DIR by openssl: a CA, a serving certificate, the service
# account key pair and two bearer tokens, an admin (group system:masters) and
# a "limited" user that RBAC grants nothing, for 403 tests. There is no
# kubelet and no controller-manager: pods are stored but never run, and
# nothing creates ServiceAccounts, so the ServiceAccount admission plugin is
# off (pods need no default ServiceAccount to be created).
#
# Exec (pods/exec) is proxied by the apiserver to the kubelet of the pod's
# node, at the InternalIP and kubelet port of its Node object: tests that
# exec register a Node at 127.0.0.1 and serve that port with a FAKE kubelet
# (tests/k8s/fake_kubelet.py). For it the apiserver presents the client
# certificate pki/kubelet-client.crt and trusts only kubelets whose serving
# certificate the CA signed: pki/fake-kubelet.crt (IP 127.0.0.1) is one.
#
# Usage: scripts/kube_up.sh DIR
# Leaves in DIR: kubeconfig, kubeconfig-limited, ca.crt, admin.token,
# limited.token, server (the URL), etcd.log, apiserver.log, etcd.pid,
# apiserver.pid; pki/ holds the keys (pki/ca.key can sign a client
# certificate, which the apiserver accepts too; fake-kubelet.crt and .key
# serve a fake kubelet), etcd/ the data. The daemons
# keep running in their own session after this script exits;
# scripts/kube_down.sh stops them. Idempotent: an apiserver already running
# for the same DIR is reused. Exits 77 (skip) with OUTPOST_SKIP_KUBE=1 or when
# kube-apiserver is not built (setup_kube.sh skips when not root).
# Ports: OUTPOST_KUBE_PORT (16443), OUTPOST_ETCD_PORT (12379),
# OUTPOST_ETCD_PEER_PORT (12380).
set -euo pipefail

log() { echo "kube-up: $*"; }
die() {
  echo "kube-up: $*" >&2
  exit 1
}

[ $# = 1 ] || die "usage: kube_up.sh DIR"
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
KUBE_PORT=${OUTPOST_KUBE_PORT:-16443}
ETCD_PORT=${OUTPOST_ETCD_PORT:-12379}
ETCD_PEER_PORT=${OUTPOST_ETCD_PEER_PORT:-12380}
CACHE=${OUTPOST_KUBE_CACHE:-/var/cache/outpost/kube}
APISERVER=${OUTPOST_KUBE_APISERVER:-$CACHE/kube-apiserver}
SERVER="https://127.0.0.1:$KUBE_PORT"

if [ "${OUTPOST_SKIP_KUBE:-0}" = 1 ]; then
  log "OUTPOST_SKIP_KUBE=1: skipped"
  exit 77
fi
if [ ! -x "$APISERVER" ]; then
  log "no kube-apiserver at $APISERVER: run scripts/setup_kube.sh as root (skipped)"
  exit 77
fi
command -v etcd >/dev/null || {
  log "no etcd: run scripts/setup_kube.sh as root (skipped)"
  exit 77
}
for tool in openssl curl setsid; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/setup_kube.sh"
done

# Credentials, made once per DIR and kept, so that a running apiserver and
# the files callers read always agree.
make_pki() {
  local pki="$DIR/pki"
  [ -f "$pki/generated" ] && return 0
  log "generating a CA, certificates, service account keys and tokens in $pki"
  rm -rf "$pki"
  mkdir -p "$pki"
  chmod 700 "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=outpost-kube-ca \
      -keyout ca.key -out ca.crt 2>/dev/null
    # kubernetes.default names are those in-cluster clients would use.
    cat >serving.ext <<'EOF'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:10.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc
EOF
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
      -keyout apiserver.key -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 3650 -extfile serving.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # token,user,uid[,"groups"]: the limited user has no group beyond the
    # system:authenticated every authenticated user gets.
    local admin limited
    admin=$(openssl rand -hex 24)
    limited=$(openssl rand -hex 24)
    printf '%s,outpost-admin,outpost-admin,"system:masters"\n%s,outpost-limited,outpost-limited\n' \
      "$admin" "$limited" >tokens.csv
    printf '%s\n' "$admin" >"$DIR/admin.token"
    printf '%s\n' "$limited" >"$DIR/limited.token"
    chmod 600 ./* "$DIR/admin.token" "$DIR/limited.token"
    cp ca.crt "$DIR/ca.crt"
    chmod 644 "$DIR/ca.crt"
    touch generated
  )
}

# The apiserver's certificates towards kubelets, made once per DIR beside the
# rest (and added to a DIR made before they existed): a client certificate
# the apiserver presents to them (group system:masters, as kubeadm's
# apiserver-kubelet-client), and a serving certificate for 127.0.0.1 that a
# fake kubelet presents.
make_kubelet_pki() {
  local pki="$DIR/pki"
  [ -f "$pki/kubelet-generated" ] && return 0
  log "generating the kubelet client and fake kubelet serving certificates in $pki"
  (
    cd "$pki"
    cat >kubelet-client.ext <<'EOF'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      -keyout kubelet-client.key -out kubelet-client.csr 2>/dev/null
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 3650 -extfile kubelet-client.ext -out kubelet-client.crt 2>/dev/null
    cat >fake-kubelet.ext <<'EOF'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EOF
    openssl req -newkey rsa:2048 -nodes -subj /CN=outpost-fake-kubelet \
      -keyout fake-kubelet.key -out fake-kubelet.csr 2>/dev/null
    openssl x509 -req -in fake-kubelet.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 3650 -extfile fake-kubelet.ext -out fake-kubelet.crt 2>/dev/null
    chmod 600 kubelet-client.* fake-kubelet.*
    touch kubelet-generated
  )
}

# $1 file, $2 user, $3 token: a kubeconfig in the usual form.
write_kubeconfig() {
  local ca
  ca=$(base64 -w0 <"$DIR/ca.crt")
  cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: outpost
  cluster:
    server: $SERVER
    certificate-authority-data: $ca
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@outpost
  context:
    cluster: outpost
    user: $2
    namespace: default
current-context: $2@outpost
EOF
  chmod 600 "$1.tmp"
  mv -f "$1.tmp" "$1"
}

# True when something accepts connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when $1.pid names a live process started for this DIR: its command
# line mentions DIR (data dir, certificates) and $2 (its port).
ours() {
  local pid cmd
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline") "
  [[ "$cmd" == *" $DIR/"* && "$cmd" == *"$2"* ]]
}

# Starts "$@" as daemon $name in its own session: no terminal, no inherited
# output (ctest waits for a test's pipes to close), so a caller's exit does
# not touch it. setsid execs in place here (a non-interactive shell's
# background job leads no process group), so $! is the daemon's pid.
start_daemon() {
  local name=$1
  shift
  setsid nohup "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

# $1 seconds, $2... command: polls the command every 0.5 s until it succeeds.
wait_for() {
  local n=$(($1 * 2))
  shift
  while ((n-- > 0)); do
    "$@" && return 0
    sleep 0.5
  done
  return 1
}

etcd_healthy() {
  curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'
}

apiserver_ready() {
  [ "$(curl -sS --max-time 3 --cacert "$DIR/ca.crt" -H "Authorization: Bearer $(cat "$DIR/admin.token")" \
    "$SERVER/readyz" 2>/dev/null)" = ok ]
}

# Stops what this run started when start-up fails, and shows why.
fail_start() {
  local name=$1
  log "$name did not become ready; the end of $DIR/$name.log:" >&2
  tail -n 25 "$DIR/$name.log" >&2 || true
  bash "$(dirname "${BASH_SOURCE[0]}")/kube_down.sh" "$DIR" >&2 || true
  exit 1
}

# Fails before anything starts when a port is taken by anything but this
# DIR's own daemons (another build directory's cluster, a system etcd...).
check_ports() {
  local port
  # A daemon of this DIR on other ports (changed OUTPOST_*_PORT) would be
  # orphaned by a second one: its pid file would be overwritten.
  if ours etcd "" && ! ours etcd "http://127.0.0.1:$ETCD_PORT "; then
    die "the etcd of $DIR runs on other ports: stop it first with scripts/kube_down.sh $DIR"
  fi
  if ours apiserver "" && ! ours apiserver "--secure-port $KUBE_PORT "; then
    die "the kube-apiserver of $DIR runs on another port: stop it first with scripts/kube_down.sh $DIR"
  fi
  if ! ours etcd "http://127.0.0.1:$ETCD_PORT "; then
    for port in "$ETCD_PORT" "$ETCD_PEER_PORT"; do
      if listening "$port"; then
        die "127.0.0.1:$port is in use by something else than the etcd of $DIR;" \
          "stop it, or choose other ports with OUTPOST_ETCD_PORT and OUTPOST_ETCD_PEER_PORT"
      fi
    done
  fi
  if ! ours apiserver "--secure-port $KUBE_PORT " && listening "$KUBE_PORT"; then
    die "127.0.0.1:$KUBE_PORT is in use by something else than the kube-apiserver of $DIR;" \
      "stop it, or choose another port with OUTPOST_KUBE_PORT"
  fi
}

start_etcd() {
  if ours etcd "http://127.0.0.1:$ETCD_PORT "; then
    log "etcd already running for $DIR (pid $(cat "$DIR/etcd.pid"))"
    wait_for 20 etcd_healthy || fail_start etcd
    return 0
  fi
  log "starting etcd on 127.0.0.1:$ETCD_PORT (data in $DIR/etcd)"
  # The warning log level keeps etcd.log readable; a single member, so the
  # peer URL only needs to be valid and free.
  start_daemon etcd etcd --name outpost --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "outpost=http://127.0.0.1:$ETCD_PEER_PORT" \
    --logger zap --log-outputs stderr --log-level warn
  wait_for 20 etcd_healthy || fail_start etcd
}

start_apiserver() {
  if ours apiserver "--secure-port $KUBE_PORT "; then
    log "kube-apiserver already running for $DIR (pid $(cat "$DIR/apiserver.pid"))"
    ours apiserver "--kubelet-client-certificate" ||
      log "note: it was started without the kubelet flags (exec tests fail): restart it with scripts/kube_down.sh $DIR"
    wait_for 60 apiserver_ready || fail_start apiserver
    return 0
  fi
  local pki="$DIR/pki"
  log "starting kube-apiserver $("$APISERVER" --version | awk '{ print $2 }') on $SERVER"
  # Node,RBAC as real clusters authorize (tests check 403s); ServiceAccount
  # admission off because no controller-manager creates default
  # ServiceAccounts (the other default plugins stay); the service account
  # issuer and keys are required by 1.20; privileged pods allowed, as kubeadm
  # does, since what runs pods is the runtime under test, not this server.
  # Kubelets (fake ones, for exec) are reached at their Node's InternalIP
  # only (no hostname to resolve), over TLS checked against the CA, with a
  # client certificate.
  start_daemon apiserver "$APISERVER" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$KUBE_PORT" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --cert-dir "$pki" \
    --token-auth-file "$pki/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount \
    --allow-privileged=true --profiling=false \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/kubelet-client.crt" \
    --kubelet-client-key "$pki/kubelet-client.key"
  wait_for 60 apiserver_ready || fail_start apiserver
}

check_ports
make_pki
make_kubelet_pki
start_etcd
start_apiserver
write_kubeconfig "$DIR/kubeconfig" outpost-admin "$(cat "$DIR/admin.token")"
write_kubeconfig "$DIR/kubeconfig-limited" outpost-limited "$(cat "$DIR/limited.token")"
echo "$SERVER" >"$DIR/server"
log "ready: $SERVER (KUBECONFIG=$DIR/kubeconfig)"
