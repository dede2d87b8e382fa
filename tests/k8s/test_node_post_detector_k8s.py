#!/usr/bin/env python3
"""The node post on Kubernetes registers its claimed pods with a real
`outpost detector`, so that the kernel enforces their template's policy
there too: `outpost post --tier node --runtime kubernetes` against a real
kube-apiserver (the ctest fixture `kube`), a real detector (eBPF, this
kernel), a real broker, and real cgroups on this host's cgroup2 file system.

A pod has no pid in the API. The node post finds its container's cgroup by
the names the kubelet and the container runtime give it (the pod's uid, the
container's id from its status), under the cgroup2 mount, and hands the
detector that path.

No kubelet runs here. The test plays the kubelet's part for the one pod
(a FAKE kubelet, named so): it makes the pod's cgroups as the kubelet's
systemd driver and containerd name them, under a cgroup root of its own
(as kind nests the kubelet's), starts the "container" (a process in that
cgroup) and PATCHes the pod's status to Running with the container's id.
Nothing else is faked: the cgroups are the kernel's, the pod the API
server's, the processes killed are killed by the detector's programs.

Needs root, eBPF (BTF) and a cgroup2 mount; exits 77 (skipped) otherwise,
and when the fixture is not there.

Usage: test_node_post_detector_k8s.py /path/to/outpost KUBE_DIR
"""
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kube  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import (Subscriber, cgroup2_root, ebpf_skip_reason, free_port,  # noqa: E402
                          request, stop_process, wait_for)

OUTPOST, KUBE_DIR = sys.argv[1], sys.argv[2]
HEX = secrets.token_hex(3)
NODE = "k8s-det-" + HEX
NS = "k8s-det-" + HEX
PREFIX = "op-"
KNS = PREFIX + NS
INTERNAL = "internal-" + secrets.token_hex(6)
ADMIN = "admin-" + secrets.token_hex(6)
TPL = "perl-lab"

TEMPLATE = f"""
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {{name: {TPL}}}
spec:
  image: localhost/outpost-lab-c:latest
  limits: {{cpu: 500m, memory: 256Mi}}
  pool: {{min: 1, max: 1}}
  policy:
    forbiddenBinaries: [/usr/bin/perl]
"""


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


class FakeKubelet:
    """The FAKE kubelet: a pod's cgroups, its container's process, its status."""

    def __init__(self, k, cgroot):
        self.k = k
        # A cgroup root of its own, as kind's kubelet.slice: the node post's
        # search starts at the cgroup2 mount, not at a fixed kubepods.
        self.root = os.path.join(cgroot, "outpost-test-kubelet-" + HEX)
        self.procs = []

    def run(self, pod):
        """Makes pod's cgroups (systemd driver, Guaranteed: requests equal
        limits), starts its container in them, and marks it Running."""
        uid = pod["metadata"]["uid"]
        self.cid = secrets.token_hex(32)
        self.cgroup = os.path.join(
            self.root, "kubepods.slice", f"kubepods-pod{uid.replace('-', '_')}.slice",
            f"cri-containerd-{self.cid}.scope")
        os.makedirs(self.cgroup)
        # The pod's pause container beside it, as every pod has.
        os.makedirs(os.path.join(os.path.dirname(self.cgroup),
                                 f"cri-containerd-{secrets.token_hex(32)}.scope"))
        self.procs.append(self.start(["sleep", "600"]))
        name = pod["metadata"]["name"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        st, j = self.k.request("PATCH", f"/api/v1/namespaces/{KNS}/pods/{name}/status", {"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": "lab", "ready": True, "restartCount": 0, "started": True,
                "image": pod["spec"]["containers"][0]["image"], "imageID": "",
                "containerID": f"containerd://{self.cid}",
                "state": {"running": {"startedAt": now}}}]}})
        assert st == 200, (st, j)

    def start(self, argv):
        """A process of the container: it joins the cgroup before it execs."""
        cgroup = self.cgroup

        def join():
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        return subprocess.Popen(argv, preexec_fn=join, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def exec(self, *argv):
        """What `kubectl exec` would run: its exit status (negative: the signal)."""
        return self.start(list(argv)).wait(timeout=30)

    def cleanup(self):
        for p in self.procs:
            p.kill()
            p.wait()
        for top, dirs, _ in os.walk(self.root, topdown=False):
            for d in dirs:
                os.rmdir(os.path.join(top, d))
        if os.path.isdir(self.root):
            os.rmdir(self.root)


def main():
    k = kube.cluster_or_skip(KUBE_DIR)
    why = ebpf_skip_reason()
    if why:
        print(f"skipped: {why}")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="outpost-k8s-det-")
    cfg = os.path.join(tmp, "labs.yaml")
    with open(cfg, "w") as f:
        f.write(TEMPLATE)
    bport, dport, nport = free_port(), free_port(), free_port()
    sub = Subscriber()
    with open(os.path.join(tmp, "broker.yaml"), "w") as f:
        f.write(f"""\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: test-detector-events}}
spec:
  broker: default
  filters: [{{prefix: {{type: dev.outpost.}}}}]
  subscriber: {{uri: "http://127.0.0.1:{sub.port}/events"}}
  delivery: {{retry: 50, backoffPolicy: linear, backoffDelay: PT0.2S}}
""")
    log_path = os.path.join(tmp, "run.log")
    log = open(log_path, "ab")
    kubelet = FakeKubelet(k, cgroup2_root())
    procs = {}
    pods = f"/api/v1/namespaces/{KNS}/pods"
    try:
        procs["broker"] = subprocess.Popen(
            [OUTPOST, "broker", "--listen", f"127.0.0.1:{bport}", "--data",
             os.path.join(tmp, "broker.db"), "--config", os.path.join(tmp, "broker.yaml"),
             "--broker", "default/default"], stdout=log, stderr=subprocess.STDOUT)
        procs["detector"] = subprocess.Popen(
            [OUTPOST, "detector", "--broker-url", f"http://127.0.0.1:{bport}/default/default",
             "--listen", f"127.0.0.1:{dport}", "--node", NODE, "--admin-token", ADMIN,
             "--batch-ms", "5"], stdout=log, stderr=subprocess.STDOUT)
        wait_for("the detector", lambda: request(dport, "GET", "/healthz", timeout=2)[0] == 200)
        procs["node"] = subprocess.Popen(
            [OUTPOST, "post", "--tier", "node", "--node", NODE, "--namespace", NS,
             "--listen", f"127.0.0.1:{nport}", "--runtime", "kubernetes", "--kubeconfig",
             k.kubeconfig, "--kube-namespace-prefix", PREFIX, "--no-ns-posts", "--config", cfg,
             "--state-dir", os.path.join(tmp, "state"), "--internal-token", INTERNAL,
             "--detector-url", f"http://127.0.0.1:{dport}", "--detector-token", ADMIN],
            stdout=log, stderr=subprocess.STDOUT)

        def live_pods():
            st, j = k.request("GET", pods)
            return [p for p in (j or {}).get("items", [])
                    if not p["metadata"].get("deletionTimestamp")] if st == 200 else []

        pod = wait_for("the pool's pod", live_pods, timeout=60)[0]
        kubelet.run(pod)
        wait_for("the pod warm", lambda: (request(nport, "GET", "/v1/capacity", token=INTERNAL)[1]
                                          or {}).get("warm", {}).get(TPL), timeout=30)
        st, env, _ = request(nport, "POST", "/v1/claims",
                             {"template": TPL, "tenant": "alice", "namespace": NS}, token=INTERNAL)
        check(st == 201, f"the pod claimed: 201 ({st} {env})")
        name = env["name"]

        def at_detector():
            st, j, _ = request(dport, "GET", "/v1/environments", token=ADMIN, timeout=5)
            return st == 200 and {e["name"]: e for e in j["environments"]}.get(name)
        got = wait_for(f"{name} at the detector", at_detector, timeout=10, step=0.05)
        check(got["cgroupId"] == os.stat(kubelet.cgroup).st_ino,
              "the detector watches the pod's container's cgroup, the one the kubelet made")
        check((got["tenant"], got["namespace"], got["template"]) == ("alice", NS, TPL),
              f"with the claim's tenant, namespace and template ({got})")
        # The node post registers the environment, then its policy: wait for both.
        def own_policy():
            st, pol, _ = request(dport, "GET", f"/v1/environments/{name}/policy", token=ADMIN)
            return st == 200 and pol["source"] == "own" and pol
        pol = wait_for(f"{name}'s policy at the detector", own_policy, timeout=10, step=0.05)
        check(pol["policy"]["forbiddenBinaries"] == ["/usr/bin/perl"],
              f"and the template's policy ({pol})")

        check(kubelet.exec("true") == 0, "an allowed command in the pod's container runs")
        check(kubelet.exec("perl", "-e", "1") == -signal.SIGKILL,
              "a forbidden binary in the pod's container is killed by the kernel")
        check(subprocess.run(["perl", "-e", "1"]).returncode == 0,
              "the same binary outside the pod is not")
        ev = wait_for("the kill at the subscriber", lambda: sub.got(
            lambda e: e.get("type") == "dev.outpost.process.exec" and e.get("action") == "killed"
            and e.get("environment") == name), timeout=30)[0]
        check((ev["tenant"], ev["namespace"]) == ("alice", NS)
              and json.loads(ev["data"])["binary"] == "/usr/bin/perl",
              "the detector's event names the pod's environment, tenant and namespace")

        st, _, _ = request(nport, "DELETE", f"/v1/environments/{name}", token=INTERNAL)
        check(st == 204, f"the environment released ({st})")
        wait_for(f"{name} gone from the detector", lambda: not at_detector(), timeout=10)
        print("ok: released, it is no longer watched")
    finally:
        for what in ("node", "detector", "broker"):
            if what in procs:
                stop_process(procs[what], timeout=30)
        kubelet.cleanup()
        sub.stop()
        k.delete_namespace(KNS)
        log.close()
        with open(log_path, errors="replace") as f:
            text = f.read()
        if os.environ.get("K8S_TEST_LOG") or any(p.returncode for p in procs.values()):
            print(text[-6000:])
    rcs = {what: p.returncode for what, p in procs.items()}
    if any(rcs.values()):
        raise AssertionError(f"exit codes {rcs}")
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if bad in text:
            raise AssertionError(f"{bad} in the log")
    print("all ok")


if __name__ == "__main__":
    main()
