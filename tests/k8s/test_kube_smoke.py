"""Smoke test of the test cluster (scripts/kube_up.sh) through kube.py: the
API behaviours other tests rely on, against a real kube-apiserver 1.20.

Usage: test_kube_smoke.py KUBE_DIR. Exits 77 when no cluster runs there.
No kubelet runs, so the pod created here is stored and watched but never
scheduled or started: its image (the offline lab image) is never pulled.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kube  # noqa: E402

LAB_IMAGE = "localhost/outpost-lab-c:latest"
failures = 0


def check(what, got, want):
    """Records one expectation, printing both sides when it fails."""
    global failures
    if got == want:
        print(f"ok   {what}")
    else:
        failures += 1
        print(f"FAIL {what}: got {got!r}, want {want!r}")


def pod(name):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "outpost-smoke", "run": name}},
            "spec": {"containers": [{"name": "lab", "image": LAB_IMAGE,
                                     "command": ["sleep", "3600"]}]}}


def reason(obj):
    return obj.get("reason") if isinstance(obj, dict) else obj


def main():
    cluster = kube.cluster_or_skip(sys.argv[1])
    status, ver = cluster.request("GET", "/version")
    check("GET /version", status, 200)
    check("server is v1.20", ver["gitVersion"].startswith("v1.20."), True)

    ns = cluster.create_namespace()
    pods = f"/api/v1/namespaces/{ns}/pods"
    try:
        status, listed = cluster.request("GET", pods)
        check("list pods of a new namespace", (status, listed["items"]), (200, []))
        rv0 = listed["metadata"]["resourceVersion"]

        status, created = cluster.request("POST", pods, pod("lab-1"))
        check("create pod", status, 201)
        check("the pod waits for a node (no kubelet here)", created["status"].get("phase"),
              "Pending")
        status, again = cluster.request("POST", pods, pod("lab-1"))
        check("create the same pod again", (status, reason(again)), (409, "AlreadyExists"))

        status, sel = cluster.request("GET", pods + "?labelSelector=app%3Doutpost-smoke")
        check("list by label selector",
              (status, [p["metadata"]["name"] for p in sel["items"]]), (200, ["lab-1"]))
        status, sel = cluster.request("GET", pods + "?labelSelector=app%3Dother")
        check("list by a selector nothing matches", (status, sel["items"]), (200, []))

        rv = created["metadata"]["resourceVersion"]
        patch = {"metadata": {"resourceVersion": rv, "labels": {"stage": "patched"}}}
        status, patched = cluster.request("PATCH", pods + "/lab-1", patch)
        check("patch a label at the current resourceVersion",
              (status, patched["metadata"]["labels"].get("stage")), (200, "patched"))
        patch["metadata"]["labels"]["stage"] = "stale"
        status, stale = cluster.request("PATCH", pods + "/lab-1", patch)
        check("patch at a stale resourceVersion", (status, reason(stale)), (409, "Conflict"))

        status, missing = cluster.request("GET", pods + "/no-such-pod")
        check("get a missing pod", (status, reason(missing)), (404, "NotFound"))

        status, denied = cluster.request("GET", pods, token=cluster.limited_token)
        check("limited user lists pods", (status, reason(denied)), (403, "Forbidden"))
        status, _ = cluster.request("GET", pods, token="not-a-token")
        check("unknown token", status, 401)
        status, _ = cluster.request("GET", pods, token="")
        check("anonymous lists pods", status, 403)

        status, group = cluster.request("GET", "/apis/networking.k8s.io/v1")
        check("NetworkPolicy API exists", status == 200 and any(
            r["name"] == "networkpolicies" for r in group["resources"]), True)
        policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": "deny-ingress"},
                  "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
        status, _ = cluster.request(
            "POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", policy)
        check("create a NetworkPolicy", status, 201)

        # An unscheduled pod goes at once, without waiting for a kubelet.
        status, _ = cluster.request("DELETE", pods + "/lab-1")
        check("delete pod", status, 200)
        status, _ = cluster.request("GET", pods + "/lab-1")
        check("the deleted pod is gone", status, 404)

        # The watch replays every change since rv0 (the server keeps a window
        # of recent events), then stays open until timeoutSeconds.
        events = []
        for kind, obj in cluster.watch(pods + "?labelSelector=run%3Dlab-1", rv0, timeout=5):
            events.append((kind, obj["metadata"].get("labels", {}).get("stage")))
            if kind == "DELETED":
                break
        # DELETE first marks the pod (one more MODIFIED), then removes it.
        kinds = [k for i, (k, _) in enumerate(events) if i == 0 or k != events[i - 1][0]]
        check("watch sees ADDED, MODIFIED, DELETED", kinds, ["ADDED", "MODIFIED", "DELETED"])
        check("the first MODIFIED carries the patch", events[1:2], [("MODIFIED", "patched")])
    finally:
        cluster.delete_namespace(ns)
    status, _ = cluster.request("GET", f"/api/v1/namespaces/{ns}")
    check("namespace deleted", status, 404)

    print(f"{failures} failure(s)" if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
