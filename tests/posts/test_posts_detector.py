#!/usr/bin/env python3
"""The posts and a real `outpost detector` end to end, with a real `outpost
broker` and podman: the node post registers each claimed environment (its
cgroup, tenant, namespace, template) and its template's policy with the
detector, so that the kernel kills what the policy forbids and the
detector's events reach the broker with the environment's name; a released
environment is deleted there; a detector killed and restarted (its table is
in memory) is caught up by the node post's reconcile, and so is one that was
down while a new node post recovered its claims. The posts are started
before the broker: they register their triggers once it is up.

Needs root, eBPF (BTF) and a cgroup2 mount, podman and the lab image
(scripts/setup_podman.sh); otherwise exit 77 (skipped) with the reason.

Usage: test_posts_detector.py /path/to/outpost /path/to/scripts/podman_service.sh
"""
import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import test_tiers as T
from test_tiers import containers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import Subscriber, cgroup2_root, ebpf_skip_reason, free_port, health_pid, request, wait_for  # noqa: E402

OUTPOST = PODMAN_SERVICE = None
NS = "detp-t" + secrets.token_hex(3)
NODE = NS + "-node"
IDLE_TPL = "c-idle"
TPL = "perl-lab"
IMAGE = "localhost/outpost-lab-c:latest"
STATE_PREFIX = "/tmp/outpost-test-detp-"
TOKEN = "tok-alice-" + secrets.token_hex(4)
ADMIN = "tok-admin-" + secrets.token_hex(4)
DETECTOR_TOKEN = "tok-det-" + secrets.token_hex(4)
RECONCILE_S = 3  # post_watch.c: WATCH_RECONCILE_MS


def remove_leftovers():
    """Environments and posts of this test's runs (never test_tiers' own)."""
    for pid in T.post_pids(STATE_PREFIX):
        os.kill(pid, signal.SIGKILL)
    names = list(containers("detp-t"))
    if names:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)
    for d in glob.glob(STATE_PREFIX + "*"):
        shutil.rmtree(d, ignore_errors=True)


def container_cgroup(lab, tenant):
    """The inode of the environment's cgroup2 directory, found from podman's side."""
    r = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", f"{NS}_{lab}__{tenant}"],
                       capture_output=True, text=True, check=True)
    with open(f"/proc/{r.stdout.strip()}/cgroup") as f:
        rel = [line[3:].strip() for line in f if line.startswith("0::")][0]
    return os.stat(cgroup2_root() + rel).st_ino


class PostsDetector(unittest.TestCase):
    """One platform for the class; the tests run in name order and build on each other."""

    @classmethod
    def setUpClass(cls):
        remove_leftovers()
        cls.dir = tempfile.mkdtemp(prefix=STATE_PREFIX)
        cls.log_path = os.path.join(cls.dir, "run.log")
        cls.log = open(cls.log_path, "ab")
        cls.bport, cls.dport, cls.cport, cls.nport, cls.nsport = (free_port() for _ in range(5))
        cls.sub = Subscriber()
        with open(os.path.join(cls.dir, "labs.yaml"), "w") as f:
            f.write(f"""\
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {{name: {TPL}}}
spec:
  image: {IMAGE}
  command: [sleep, infinity]
  pool: {{min: 1, max: 2}}
  policy:
    forbiddenBinaries: [/usr/bin/perl]
    forbiddenPaths: [/etc/shadow]
---
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {{name: {IDLE_TPL}}}
spec:
  image: {IMAGE}
  command: [sleep, infinity]
  idleTimeout: PT12S
  pool: {{min: 0, max: 1}}
---
apiVersion: outpost.dev/v1
kind: NamespacePolicy
metadata: {{name: {NS}}}
spec:
  onViolation: [alert]
""")
        # The test's own trigger: what the detector publishes, to the subscriber.
        with open(os.path.join(cls.dir, "broker.yaml"), "w") as f:
            f.write(f"""\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: test-detector-events}}
spec:
  broker: default
  filters: [{{prefix: {{type: dev.outpost.}}}}, {{exact: {{namespace: {NS}}}}}]
  subscriber: {{uri: "http://127.0.0.1:{cls.sub.port}/events"}}
  delivery: {{retry: 50, backoffPolicy: linear, backoffDelay: PT0.2S}}
""")
        cls.detector = cls.start_detector()
        # The posts first: they register their triggers once the broker is up.
        cls.cluster = subprocess.Popen(
            [OUTPOST, "post", "--tier", "cluster", "--listen", f"127.0.0.1:{cls.cport}",
             "--node-listen", f"127.0.0.1:{cls.nport}", "--ns-port", str(cls.nsport),
             "--node", NODE, "--namespace", NS, "--state-dir", os.path.join(cls.dir, "state"),
             "--config", os.path.join(cls.dir, "labs.yaml"),
             "--broker-url", f"http://127.0.0.1:{cls.bport}/default/default",
             "--admin-token", ADMIN, "--tenant-token", f"alice={TOKEN}",
             "--detector-url", f"http://127.0.0.1:{cls.dport}",
             "--detector-token", DETECTOR_TOKEN],
            stdout=cls.log, stderr=subprocess.STDOUT)
        wait_for("the cluster post", lambda: health_pid(cls.cport) == cls.cluster.pid)
        wait_for("the node post", lambda: health_pid(cls.nport))
        wait_for("the ns post", lambda: health_pid(cls.nsport))
        time.sleep(1)  # a few registrations fail meanwhile
        cls.broker = subprocess.Popen(
            [OUTPOST, "broker", "--listen", f"127.0.0.1:{cls.bport}", "--data",
             os.path.join(cls.dir, "broker.db"), "--config", os.path.join(cls.dir, "broker.yaml"),
             "--broker", "default/default"], stdout=cls.log, stderr=subprocess.STDOUT)
        wait_for("the broker", lambda: request(cls.bport, "GET", "/healthz", timeout=2)[0] == 200)

    @classmethod
    def start_detector(cls):
        proc = subprocess.Popen(
            [OUTPOST, "detector", "--broker-url", f"http://127.0.0.1:{cls.bport}/default/default",
             "--listen", f"127.0.0.1:{cls.dport}", "--node", NODE, "--admin-token",
             DETECTOR_TOKEN, "--batch-ms", "5"], stdout=cls.log, stderr=subprocess.STDOUT)
        wait_for("the detector", lambda: request(cls.dport, "GET", "/healthz", timeout=2)[0] == 200)
        return proc

    @classmethod
    def tearDownClass(cls):
        rc = {}
        for name in ("cluster", "detector", "broker"):
            proc = getattr(cls, name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                rc[name] = proc.wait(timeout=60)
        left = T.post_pids(cls.dir)
        cls.sub.stop()
        cls.log.close()
        with open(cls.log_path, errors="replace") as f:
            text = f.read()
        remove_leftovers()
        if os.environ.get("TIERS_TEST_LOG"):
            print(text)
        assert rc == {"cluster": 0, "detector": 0, "broker": 0}, f"exit codes {rc}"
        assert not left, f"posts left running: {left}"
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in text, f"{bad} in the log:\n{text[-4000:]}"

    # ------------------------------------------------------------- helpers

    def labs(self, method, path="", body=None, **kw):
        return request(self.cport, method, f"/v1/labs/{TPL}/environments" + path, body=body,
                       token=TOKEN, **kw)

    def exec(self, lab, *argv):
        st, j, _ = self.labs("POST", f"/{lab}/exec", {"argv": list(argv)})
        self.assertEqual(st, 200, j)
        return j

    def detector_envs(self):
        st, j, _ = request(self.dport, "GET", "/v1/environments", token=DETECTOR_TOKEN, timeout=5)
        return {e["name"]: e for e in j["environments"]} if st == 200 else {}

    def node_metric(self, name):
        st, m, _ = request(self.nport, "GET", "/metrics")
        return sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith(name))

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def assert_gauge(self, n):
        """The node post's count of registered environments reaches n: it moves
        once the detector's answer is back, a moment after the detector has it."""
        gauge = "outpost_post_node_detector_environments"
        wait_for(f"{gauge} {n}", lambda: self.node_metric(gauge) == n, timeout=5)

    def assert_registered(self, lab, timeout):
        env = wait_for(f"{lab} at the detector", lambda: self.detector_envs().get(lab),
                       timeout=timeout, step=0.02)
        self.assertEqual((env["tenant"], env["namespace"], env["template"]),
                         ("alice", NS, TPL), env)
        # The environment's own cgroup, as podman placed it: where exec'd
        # processes run.
        self.assertEqual(env["cgroupId"], container_cgroup(lab, "alice"), env)
        # Registered, then its policy put: the policy may come a moment later.
        def own_policy():
            st, pol, _ = request(self.dport, "GET", f"/v1/environments/{lab}/policy",
                                 token=DETECTOR_TOKEN)
            return st == 200 and pol["source"] == "own" and pol
        pol = wait_for(f"{lab}'s policy at the detector", own_policy, timeout=timeout, step=0.02)
        self.assertEqual((pol["policy"]["forbiddenBinaries"], pol["policy"]["forbiddenPaths"]),
                         (["/usr/bin/perl"], ["/etc/shadow"]), pol)

    # ------------------------------------------------------------- tests

    def test_0_triggers_after_the_broker(self):
        """Registered once the broker came up; each post said so once."""
        def names():
            st, j, _ = request(self.bport, "GET", "/v1/triggers/default")
            return st == 200 and {t["metadata"]["name"] for t in j}
        wait_for("the posts' triggers", lambda: {f"ns-{NS}", "cluster-post"} <= (names() or set()),
                 timeout=60)
        wait_for("the posts' log lines", lambda: self.log_text().count("triggers registered at") == 2)
        text = self.log_text()
        self.assertEqual(text.count("cannot register triggers at"), 2, text[-3000:])

    def test_1_claim_registered(self):
        wait_for("a warm environment", lambda: (request(self.nport, "GET", "/v1/capacity")[1] or {})
                 .get("warm", {}).get(TPL), timeout=120)
        t0 = time.monotonic()
        st, lab, _ = self.labs("POST", timeout=120)
        self.assertEqual((st, lab["warm"]), (201, True), lab)
        type(self).lab = lab["name"]
        # Well within the reconcile period: the claim itself queued it.
        self.assert_registered(self.lab, timeout=RECONCILE_S / 3)
        print(f"\n  {self.lab} registered at the detector {time.monotonic() - t0:.2f} s after "
              "the claim's request")
        self.assert_gauge(1)
        self.assertGreater(self.node_metric('outpost_post_node_detector_calls_total{result="ok"}'), 0)

    def test_2_policy_enforced(self):
        self.assertEqual(self.exec(self.lab, "true")["exit_code"], 0)
        self.assertEqual(self.exec(self.lab, "perl", "-e", "1")["exit_code"], 137)
        self.assertEqual(self.exec(self.lab, "cat", "/etc/shadow")["exit_code"], 137)
        killed = lambda t: self.sub.got(lambda ev: ev.get("type") == t
                                        and ev.get("action") == "killed"
                                        and ev.get("environment") == self.lab)
        ev = wait_for("the kill of perl at the subscriber",
                      lambda: killed("dev.outpost.process.exec"))[0]
        self.assertEqual((ev["tenant"], ev["namespace"], ev["severity"]), ("alice", NS, "critical"))
        self.assertEqual(json.loads(ev["data"])["binary"], "/usr/bin/perl")
        ev = wait_for("the kill of cat at the subscriber", lambda: killed("dev.outpost.file.open"))[0]
        self.assertEqual(json.loads(ev["data"])["path"], "/etc/shadow")
        # And through the trigger the node post registered, its ns post counts them.
        wait_for("the ns post's count", lambda: (request(self.nsport, "GET", "/v1/violations")[1]
                                                or {}).get("violations", {}).get("alice", 0) >= 2)

    def test_3_detector_restarted(self):
        os.kill(self.detector.pid, signal.SIGKILL)
        self.detector.wait()
        # Down until the node post has called it and failed (its reconcile
        # comes every RECONCILE_S): a restart quicker than that is never seen.
        unreachable = lambda: re.findall(r"detector at \S+ unreachable", self.log_text())
        wait_for("the node post's call to the killed detector", unreachable,
                 timeout=RECONCILE_S + 5, step=0.1)
        type(self).detector = self.start_detector()
        t0 = time.monotonic()
        self.assert_registered(self.lab, timeout=RECONCILE_S + 5)
        print(f"\n  detector restarted; {self.lab} registered again after "
              f"{time.monotonic() - t0:.2f} s")
        self.assertEqual(self.exec(self.lab, "perl", "-e", "1")["exit_code"], 137)
        # One line when it went away, one when it was back: not one per call.
        text = self.log_text()
        self.assertEqual(len(re.findall(r"detector at \S+ unreachable", text)), 1, text[-3000:])
        self.assertEqual(len(re.findall(r"detector at \S+ reachable again", text)), 1, text[-3000:])
        self.assertGreater(self.node_metric('outpost_post_node_detector_calls_total{result="failed"}'),
                           0)

    def test_4_release(self):
        st, _, _ = self.labs("DELETE", f"/{self.lab}")
        self.assertEqual(st, 204)
        # Within a fraction of the reconcile period: the release itself deleted it.
        t0 = time.monotonic()
        wait_for("the environment gone from the detector",
                 lambda: self.lab not in self.detector_envs(), timeout=RECONCILE_S / 6, step=0.02)
        print(f"\n  gone from the detector {time.monotonic() - t0:.3f} s after the release")
        self.assert_gauge(0)

    def test_5_recovered_by_a_new_node_post(self):
        """A new node post registers the claims it recovers with a detector that lost them."""
        st, lab, _ = self.labs("POST", timeout=120)
        self.assertIn(st, (201, 202), lab)
        wait_for("ready", lambda: self.labs("GET", f"/{lab['name']}")[1].get("status") == "ready",
                 timeout=120)
        self.assert_registered(lab["name"], timeout=10)
        os.kill(self.detector.pid, signal.SIGKILL)
        self.detector.wait()
        node = health_pid(self.nport)
        os.kill(node, signal.SIGKILL)
        wait_for("a new node post", lambda: (p := health_pid(self.nport)) and p != node)
        type(self).detector = self.start_detector()
        self.assert_registered(lab["name"], timeout=RECONCILE_S + 5)
        self.assertEqual(self.exec(lab["name"], "cat", "/etc/shadow")["exit_code"], 137)
        st, _, _ = self.labs("DELETE", f"/{lab['name']}")
        self.assertEqual(st, 204)
        wait_for("gone from the detector", lambda: lab["name"] not in self.detector_envs(),
                 timeout=RECONCILE_S / 6, step=0.02)

    def test_6_detector_activity_keeps_an_environment(self):
        """Processes the detector sees in a claimed environment are its tenant's activity: run
        outside the Labs API (podman exec), they keep it past its idle timeout; once they stop
        it is reclaimed."""
        labs = lambda m, path="", **kw: request(self.cport, m, f"/v1/labs/{IDLE_TPL}/environments"
                                                + path, token=TOKEN, **kw)
        st, lab, _ = labs("POST", timeout=120)
        self.assertIn(st, (201, 202), lab)
        name = lab["name"]
        wait_for("ready", lambda: labs("GET", f"/{name}")[1].get("status") == "ready",
                 timeout=120)
        wait_for(f"{name} at the detector", lambda: self.detector_envs().get(name), timeout=10)
        # The idle clock starts here (an API call); from now on only podman exec, outside the
        # API, with a margin for a loaded machine (podman exec alone may take seconds then).
        self.assertEqual(labs("POST", f"/{name}/keepalive")[0], 204)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 26:  # more than twice the idle timeout (12 s)
            r = subprocess.run(["podman", "exec", f"{NS}_{name}__alice", "true"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"after {time.monotonic() - t0:.1f} s: {r.stderr}")
            time.sleep(1)
        st, j, _ = labs("GET", f"/{name}")
        self.assertEqual((st, j.get("status")), (200, "ready"),
                         "reclaimed although its processes kept running")
        st, m, _ = request(self.nsport, "GET", "/metrics")
        reports = [l for l in m.splitlines() if l.startswith("outpost_post_ns_activity_reports_total")]
        self.assertGreater(float(reports[0].split()[-1]), 0, reports)
        # Quiet now: reclaimed after its idle timeout.
        wait_for("the reclaim", lambda: labs("GET", f"/{name}")[0] == 404, timeout=45)


def main():
    global OUTPOST, PODMAN_SERVICE
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    OUTPOST, PODMAN_SERVICE = sys.argv[1], sys.argv[2]
    why = ebpf_skip_reason()
    if why:
        print(f"skipped: {why}")
        sys.exit(77)
    subprocess.run([PODMAN_SERVICE, "start"], check=True)
    unittest.main(argv=sys.argv[:1], verbosity=2)


if __name__ == "__main__":
    main()
