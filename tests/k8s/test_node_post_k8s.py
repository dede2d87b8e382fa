#!/usr/bin/env python3
"""`outpost post --tier node --runtime kubernetes` against a real
kube-apiserver (the ctest fixture `kube`): the node post's warm pool made of
pods in the namespace's Kubernetes namespace, pinned to its node, with the
pod security the runtime promises; a claim through the node post's API is a
relabel of the pod; and the runtime's watch (not polling) tells the pool
when a pod goes away outside it: a deleted warm pod is replaced, a deleted
claimed one is forgotten with a `reclaimed` event of reason `gone`.

No kubelet runs here, so pods never start by themselves. The test plays
the kubelet's one part the pool waits for: it PATCHes a pod's status to
Running through the API's status subresource (a FAKE kubelet, named so;
nothing else about the pods is faked).

Usage: test_node_post_k8s.py /path/to/outpost KUBE_DIR
"""
import os
import secrets
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kube  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import free_port, request, wait_for  # noqa: E402

OUTPOST, KUBE_DIR = sys.argv[1], sys.argv[2]
NODE = "k8s-node-" + secrets.token_hex(3)
NS = "k8s-labs-" + secrets.token_hex(3)
PREFIX = "op-"
KNS = PREFIX + NS
TOKEN = "internal-" + secrets.token_hex(6)

TEMPLATE = """
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {name: c-lab}
spec:
  image: localhost/outpost-lab-c:latest
  limits: {cpu: 500m, memory: 256Mi}
  idleTimeout: PT10M
  pool: {min: 1, max: 1}
"""


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def main():
    k = kube.cluster_or_skip(KUBE_DIR)
    tmp = tempfile.mkdtemp(prefix="outpost-k8s-node-")
    cfg = os.path.join(tmp, "labs.yaml")
    with open(cfg, "w") as f:
        f.write(TEMPLATE)
    port = free_port()
    log = open(os.path.join(tmp, "node.log"), "w+")
    proc = subprocess.Popen(
        [OUTPOST, "post", "--tier", "node", "--node", NODE, "--namespace", NS,
         "--listen", f"127.0.0.1:{port}", "--runtime", "kubernetes", "--kubeconfig",
         k.kubeconfig, "--kube-namespace-prefix", PREFIX, "--no-ns-posts", "--config", cfg,
         "--state-dir", os.path.join(tmp, "state"), "--internal-token", TOKEN],
        stdout=log, stderr=subprocess.STDOUT)
    pods = f"/api/v1/namespaces/{KNS}/pods"

    def pool_pods():
        st, j = k.request("GET", pods)
        return [p for p in (j or {}).get("items", []) if not p["metadata"].get("deletionTimestamp")] \
            if st == 200 else []

    def fake_kubelet_runs(pod):
        """The FAKE kubelet: marks the pod Running through the status subresource."""
        name = pod["metadata"]["name"]
        st, j = k.request("PATCH", f"{pods}/{name}/status",
                          {"status": {"phase": "Running", "conditions": [
                              {"type": "Ready", "status": "True"}]}})
        assert st == 200, (st, j)

    def warm():
        st, j, _ = request(port, "GET", "/v1/capacity", token=TOKEN)
        return st == 200 and (j.get("warm") or {}).get("c-lab", 0) >= 1

    try:
        # The pool's first pod: in <prefix><ns>, pinned to the node, least privilege.
        first = wait_for("the pool's first pod", lambda: pool_pods(), timeout=60)[0]
        spec = first["spec"]
        c = spec["containers"][0]
        check(spec.get("nodeName") == NODE, "the pod is pinned to the node post's node")
        check(first["metadata"]["labels"].get("outpost.dev/node") == NODE,
              "the pod carries the pool's node label")
        sc = c["securityContext"]
        check(sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
              and sc["seccompProfile"]["type"] == "RuntimeDefault",
              "no privilege escalation, every capability dropped, seccomp RuntimeDefault")
        check(c["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"},
              "the template's limits are the pod's limits")
        check(spec.get("automountServiceAccountToken") is False, "no service-account token")
        # Unauthenticated callers are refused by the node post.
        check(request(port, "GET", "/v1/capacity")[0] == 401,
              "the node post's API wants the internal token")

        # Not warm until it runs; the fake kubelet makes it run.
        time.sleep(1)
        check(not warm(), "a Pending pod is not warm")
        fake_kubelet_runs(first)
        wait_for("the pod warm", warm)
        print("ok: a Running pod is warm")

        # A warm pod deleted outside the pool: the watch says so; the pool makes another.
        st, _ = k.request("DELETE", f"{pods}/{first['metadata']['name']}?gracePeriodSeconds=0")
        check(st == 200, "the warm pod deleted through the API")
        second = wait_for("a replacement pod", lambda: [p for p in pool_pods()
                                                        if p["metadata"]["uid"] !=
                                                        first["metadata"]["uid"]], timeout=60)[0]
        check(True, "the pool replaced the deleted warm pod")
        fake_kubelet_runs(second)
        wait_for("the replacement warm", warm)

        # A claim through the node post is a relabel of that pod (atomic on Kubernetes).
        st, j, _ = request(port, "POST", "/v1/claims",
                           {"template": "c-lab", "tenant": "alice", "namespace": NS}, token=TOKEN)
        check(st == 201, f"a warm claim: 201 ({st} {j})")
        st, pod = k.request("GET", f"{pods}/{second['metadata']['name']}")
        check(pod["metadata"]["labels"].get("outpost.dev/owner") == "alice",
              "the claimed pod is labelled outpost.dev/owner=alice")

        # The claimed pod deleted outside the pool: forgotten, counted.
        k.request("DELETE", f"{pods}/{second['metadata']['name']}?gracePeriodSeconds=0")

        def forgotten():
            st, j, _ = request(port, "GET", "/v1/environments?tenant=alice", token=TOKEN)
            return st == 200 and not j["environments"]
        wait_for("the claimed environment forgotten", forgotten)
        print("ok: a claimed pod deleted outside the pool is forgotten")
        text = request(port, "GET", "/metrics")[1] or ""
        gone = [l for l in text.splitlines()
                if l.startswith("outpost_post_node_runtime_gone_total")]
        check(gone and float(gone[0].split()[-1]) >= 2,
              f"the watch reported both deletions ({gone})")
        log.seek(0)
        check("outside the pool" in log.read(), "the node post logged them")
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.seek(0)
        text = log.read()
        log.close()
        k.delete_namespace(KNS)
        if os.environ.get("K8S_TEST_LOG") or rc != 0:
            print(text[-4000:])
    if rc != 0:
        raise AssertionError(f"the node post exited {rc}")
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if bad in text:
            raise AssertionError(f"{bad} in the node post's log")
    print("all ok")


if __name__ == "__main__":
    main()
