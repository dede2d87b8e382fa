#!/usr/bin/env python3
"""`outpost run` end to end: the README's demo (scripts/demo.sh, run exactly
as a newcomer runs it) against a real `outpost run` on real podman, eBPF and
HTTP; then what an operator relies on: one run per data folder, kill -9 of
the run process (its children live on and the next run adopts them), a clean
stop on SIGTERM (every process gone, exit 0), a restart that finds its state
(tokens, triggers, the broker's log), and `--kafka mock` read back by kcat.

Needs root, podman and the lab image (scripts/setup_podman.sh); otherwise
exit 77 (skipped). Each run has its own node name (its environments carry it
as a label), data folder and ports; what a crashed earlier run left behind
is removed first.

Usage: test_run.py /path/to/outpost /path/to/scripts/podman_service.sh /path/to/scripts/demo.sh
"""
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import alive, health_pid, request  # noqa: E402

OUTPOST = PODMAN_SERVICE = DEMO = None
IMAGE = "localhost/outpost-lab-c:latest"
DATA_PREFIX = "outpost-test-run-"


def ports_free(base):
    for off in (0, 5, 9, 10, 11, 12):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", base + off))
        except OSError:
            return False
        finally:
            s.close()
    return True


def port_base():
    for _ in range(200):
        base = 20000 + secrets.randbelow(40000)
        if ports_free(base):
            return base
    raise RuntimeError("no free ports")


def read(path):
    with open(path) as f:
        return f.read()


def podman(*args):
    return subprocess.run(["podman", *args], capture_output=True, text=True)


def remove_envs(node):
    ids = podman("ps", "-aq", "--filter", f"label=outpost.dev/node={node}").stdout.split()
    if ids:
        podman("rm", "-f", "-t", "0", *ids)


KAFKA_PASSWORD = "kafka-" + secrets.token_hex(6)


class Run:
    """One `outpost run` process with its output collected line by line."""

    def __init__(self, data, base, node, *extra, wrap=()):
        self.data, self.base = data, base
        self.lines = []
        self.cv = threading.Condition()
        # A Kafka password in the environment (unused by the embedded log):
        # it must reach the broker only.
        env = dict(os.environ, OUTPOST_KAFKA_SASL_PASSWORD=KAFKA_PASSWORD)
        self.proc = subprocess.Popen(
            [*wrap, OUTPOST, "run", "--data", data, "--port-base", str(base), "--node", node, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()

    def wait_line(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not any(text in l for l in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.cv.wait(0.2):
                    raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines))
                self.cv.wait(min(left, 0.5))

    def output(self):
        with self.cv:
            return "\n".join(self.lines)

    def port(self, what):
        return self.base + {"broker": 0, "detector": 5, "run": 9, "cluster": 10, "node": 11,
                            "ns": 12}[what]

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


class RunTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=DATA_PREFIX)
        cls.node = "run-t" + secrets.token_hex(3)
        cls.runs = []

    @classmethod
    def tearDownClass(cls):
        for r in cls.runs:
            if r.proc.poll() is None:
                r.stop(timeout=60)
        # A failed test may leave adopted children: every process of this data folder.
        subprocess.run(["pkill", "-9", "-f", cls.tmp])
        remove_envs(cls.node)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self, data, base, *extra, node=None):
        r = Run(data, base, node or self.node, *extra)
        self.runs.append(r)
        return r

    def component_pids(self, r):
        return {w: health_pid(r.port(w)) for w in ("broker", "detector", "cluster", "node", "ns")}

    def test_demo_stop_restart_adopt(self):
        data = os.path.join(self.tmp, "data")
        base = port_base()
        r = self.start(data, base)
        r.wait_line("Ctrl-C", timeout=180)
        out = r.output()
        for what in ("Labs REST API", "broker ingress", "event tail", "detector"):
            self.assertIn(what, out)
        bpf = request(r.port("detector"), "GET", "/healthz")[1].get("bpf")

        # The demo, exactly as the README runs it.
        env = dict(os.environ, OUTPOST_DATA=data, OUTPOST_PORT_BASE=str(base), OUTPOST=OUTPOST)
        demo = subprocess.run(["bash", DEMO], env=env, capture_output=True, text=True,
                              timeout=420)
        print(demo.stdout[-3000:], demo.stderr[-2000:], sep="\n", file=sys.stderr)
        self.assertEqual(demo.returncode, 0, "the demo failed")
        self.assertIn("hello from the lab", demo.stdout)
        if bpf:
            self.assertIn("killed in the kernel", demo.stdout)
        self.assertIn("reclaimed", demo.stdout)
        self.assertIn("0 warm environments", demo.stdout)

        # One run per data folder.
        second = subprocess.run([OUTPOST, "run", "--data", data, "--port-base", str(port_base())],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(second.returncode, 1)
        self.assertIn("another `outpost run` uses this data folder", second.stderr)
        # A port in use is an error, not a second listener sharing it.
        third = subprocess.run([OUTPOST, "run", "--data", os.path.join(self.tmp, "other"),
                                "--port-base", str(base), "--no-detector"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(third.returncode, 1, third.stdout + third.stderr)
        self.assertIn(f"cannot listen on 127.0.0.1:{base + 9}", third.stdout + third.stderr)

        # kill -9 of the run process: its children keep running; the next run adopts them.
        before = self.component_pids(r)
        self.assertTrue(all(before.values()), before)
        r.stop(signal.SIGKILL)
        time.sleep(1)
        self.assertEqual(self.component_pids(r), before)
        r2 = self.start(data, base)
        r2.wait_line("Ctrl-C", timeout=120)
        for what in ("adopted broker", "adopted detector", "adopted cluster post"):
            self.assertIn(what, r2.output())
        self.assertEqual(self.component_pids(r2), before)
        tokens = read(os.path.join(data, "tokens"))
        alice = [l.split()[1] for l in tokens.splitlines() if l.startswith("alice ")][0]
        st, j, _ = request(r2.port("cluster"), "POST", "/v1/labs/c-lab/environments", token=alice)
        self.assertIn(st, (201, 202), j)
        name = j["name"]

        # SIGTERM: everything stops, exit 0; environments stay in the runtime.
        self.assertEqual(r2.stop(timeout=90), 0, r2.output())
        time.sleep(0.5)
        for w, pid in before.items():
            self.assertFalse(alive(pid), f"{w} (pid {pid}) still runs after the stop")
        self.assertIn("stopping", r2.output())

        # A restart finds its state: the same tokens, the triggers, the broker's log, the lab.
        r3 = self.start(data, base)
        r3.wait_line("Ctrl-C", timeout=120)
        self.assertEqual(read(os.path.join(data, "tokens")), tokens)
        admin = read(os.path.join(data, "admin-token")).strip()
        # The node and ns posts' APIs are for the posts: the internal token
        # (the admin token under `outpost run`), else 401.
        for what, path in (("node", "/v1/capacity"), ("ns", "/v1/violations")):
            st, j, _ = request(r3.port(what), "GET", path)
            self.assertEqual(st, 401, (what, j))
            self.assertIn("internal token", j["error"])
            self.assertEqual(request(r3.port(what), "GET", path, token=alice)[0], 401, what)
            self.assertEqual(request(r3.port(what), "GET", path, token=admin)[0], 200, what)
        # Tokens go to the children through their environments, never on a
        # command line (which any local user reads in /proc), and each child
        # gets only those it uses: the ns post the posts' own, not the
        # broker's or the detector's.
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            self.assertNotIn(admin.encode(), cmdline, f"the admin token on pid {pid}'s command line")
        pids = self.component_pids(r3)
        def env_of(pid):
            with open(f"/proc/{pid}/environ", "rb") as f:
                return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        self.assertEqual(env_of(pids["broker"]).get(b"OUTPOST_ADMIN_TOKEN"), admin.encode())
        ns_env = env_of(pids["ns"])
        self.assertEqual(ns_env.get(b"OUTPOST_INTERNAL_TOKEN"), admin.encode())
        for var in (b"OUTPOST_ADMIN_TOKEN", b"OUTPOST_BROKER_TOKEN", b"OUTPOST_DETECTOR_TOKEN"):
            self.assertNotIn(var, ns_env)
        # The Kafka log's password: the broker's alone.
        self.assertEqual(env_of(pids["broker"]).get(b"OUTPOST_KAFKA_SASL_PASSWORD"),
                         KAFKA_PASSWORD.encode())
        for w in ("detector", "cluster", "node", "ns"):
            self.assertNotIn(b"OUTPOST_KAFKA_SASL_PASSWORD", env_of(pids[w]), w)
        self.assertIn(b"OUTPOST_BROKER_TOKEN", env_of(pids["node"]))
        st, j, _ = request(r3.port("broker"), "GET", "/v1/triggers", token=admin)
        self.assertEqual(st, 200, j)
        names = {t["metadata"]["name"] for t in j}
        self.assertTrue({"outpost-run-tail", "ns-labs", "cluster-post"} <= names, names)
        db = sqlite3.connect(os.path.join(data, "broker", "broker.db"))
        kept = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        db.close()
        self.assertGreater(kept, 10, "the broker's log lost the events of the first runs")
        deadline = time.monotonic() + 60
        while True:
            st, j, _ = request(r3.port("cluster"), "GET", f"/v1/labs/c-lab/environments/{name}",
                               token=alice)
            if st == 200 and j.get("status") == "ready":
                break
            self.assertLess(time.monotonic(), deadline, (st, j))
            time.sleep(0.5)
        self.assertEqual(request(r3.port("cluster"), "DELETE",
                                 f"/v1/labs/c-lab/environments/{name}", token=alice)[0], 204)
        self.assertEqual(r3.stop(timeout=90), 0, r3.output())

    def test_host_is_ipv4(self):
        # The posts put the host in URIs and start theirs on it: IPv4 only.
        with tempfile.TemporaryDirectory() as d:
            for host in ("::1", "[::1]", "localhost"):
                p = subprocess.run([OUTPOST, "run", "--data", d, "--host", host],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(f"bad value '{host}' for --host", p.stderr)

    def test_kafka_mock(self):
        if not shutil.which("kcat"):
            self.skipTest("kcat is not installed")
        data = os.path.join(self.tmp, "kafka")
        base = port_base()
        r = self.start(data, base, "--kafka", "mock", "--no-detector",
                       node=self.node + "-k")
        r.wait_line("Ctrl-C", timeout=180)
        self.assertIn("kafka (mock)", r.output())
        kafka = request(r.port("broker"), "GET", "/healthz")[1]["kafka"]
        admin = read(os.path.join(data, "admin-token")).strip()
        eid = "e2e-" + secrets.token_hex(4)
        event = {"ce-specversion": "1.0", "ce-id": eid, "ce-source": "/e2e", "ce-type": "e2e.test",
                 "ce-partitionkey": "k1", "Content-Type": "application/json"}
        # The ingress takes events from its senders only (data/senders): the
        # admin token is the sender "outpost", which the detector and posts use.
        self.assertIn(f"its senders' tokens: {data}/senders", r.output())
        c = http.client.HTTPConnection("127.0.0.1", r.port("broker"), timeout=10)
        c.request("POST", "/default/default", body=b'{"n": 0}', headers=event)
        a = c.getresponse()
        body = a.read()
        self.assertEqual(a.status, 401, body)
        c.request("POST", "/default/default", body=b'{"n": 1}',
                  headers=dict(event, Authorization=f"Bearer {admin}"))
        self.assertEqual(c.getresponse().status, 202)
        c.close()
        got = subprocess.run(["kcat", "-C", "-b", kafka, "-t", "knative-broker-default-default",
                              "-o", "beginning", "-e", "-J", "-q"],
                             capture_output=True, text=True, timeout=60)
        recs = [json.loads(l) for l in got.stdout.splitlines() if l.startswith("{")]
        mine = [m for m in recs if eid in json.dumps(m.get("headers"))]
        self.assertEqual(len(mine), 1, got.stdout[-2000:] + got.stderr)
        self.assertEqual(mine[0]["key"], "k1")
        self.assertEqual(json.loads(mine[0]["payload"]), {"n": 1})
        # The tail sees the broker's events too.
        deadline = time.monotonic() + 30
        while True:
            st, j, _ = request(r.port("run"), "GET", "/v1/events?type=e2e.&wait=1000", token=admin)
            self.assertEqual(st, 200, j)
            if any(e["event"]["id"] == eid for e in j["events"]):
                break
            self.assertLess(time.monotonic(), deadline, "the tail never saw the event")
        self.assertEqual(request(r.port("run"), "GET", "/v1/events")[0], 401)
        self.assertEqual(request(r.port("run"), "GET", "/v1/events?wait=99999",
                                 token=admin)[0], 400)
        self.assertEqual(r.stop(timeout=90), 0, r.output())

    def test_without_ebpf_the_rest_runs(self):
        """In a user namespace bpf() is refused: the detector exits 3, run says so in one
        line and restarts it with --no-bpf; tenants' events still flow."""
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"],
                               capture_output=True)
        if probe.returncode != 0:
            self.skipTest("no user namespaces here")
        data = os.path.join(self.tmp, "nobpf")
        base = port_base()
        r = Run(data, base, self.node + "-u", wrap=["unshare", "--user", "--map-root-user"])
        self.runs.append(r)
        r.wait_line("Ctrl-C", timeout=180)
        out = r.output()
        fallback = [l for l in out.splitlines() if "the kernel side (eBPF) cannot run" in l]
        self.assertEqual(len(fallback), 1, out)
        self.assertIn("eBPF off", out)
        st, j, _ = request(r.port("detector"), "GET", "/healthz")
        self.assertEqual((st, j.get("bpf")), (200, False), j)
        alice = [l.split()[1] for l in read(os.path.join(data, "tokens")).splitlines()
                 if l.startswith("alice ")][0]
        st, j, _ = request(r.port("detector"), "POST", "/v1/tenants/alice/events",
                           {"type": "hello", "subject": "nobpf"}, token=alice)
        self.assertEqual(st, 202, j)
        admin = read(os.path.join(data, "admin-token")).strip()
        deadline = time.monotonic() + 30
        while True:
            st, got, _ = request(r.port("run"), "GET",
                                 "/v1/events?type=dev.outpost.tenant.hello&wait=1000", token=admin)
            if st == 200 and any(e["event"]["id"] == j["id"] for e in got["events"]):
                break
            self.assertLess(time.monotonic(), deadline, "the tenant event never reached the tail")
        self.assertEqual(r.stop(timeout=90), 0, r.output())


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (podman, eBPF)"
    if not shutil.which("podman"):
        return "podman is not installed (scripts/setup_podman.sh)"
    if podman("image", "exists", IMAGE).returncode != 0:
        return f"no image {IMAGE} (scripts/setup_podman.sh)"
    return None


if __name__ == "__main__":
    OUTPOST, PODMAN_SERVICE, DEMO = (os.path.abspath(a) for a in sys.argv[1:4])
    del sys.argv[1:4]
    why = skip_reason()
    if why:
        print("skipped:", why)
        sys.exit(77)
    subprocess.run(["bash", PODMAN_SERVICE, "start"], check=True)
    unittest.main(verbosity=2)
