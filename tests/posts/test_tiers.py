#!/usr/bin/env python3
"""The tiers of posts against real podman and a real `outpost broker`: the
Labs REST API (claims, exec, tenant isolation, quota, tokens, bad bodies),
the triggers the posts register at the broker themselves, the ns post's
policy fed through them (alert, recycle, quarantine honoured by the cluster
post, state kept across a kill -9), and failure
isolation: kill -9 of the node post (environments keep running, restarted
within about a second, pool recovered, API back), of the ns post (only it
restarts) and of the cluster post (the node post and environments live on;
a new cluster post adopts the running node post instead of starting a
second one). The multi-node wiring: a node post of its own with
--advertise-host and --trigger-api (its per-node trigger, at the trigger
API and not at its --broker-url's ingress, delivering to the advertised
host, this node's events only), and a second cluster post with
--node-post-service that finds the running node post, starts none, and
claims on it. Apart (--refresh, a minute): the triggers put again every
minute, back at a broker restarted without its state.

Needs root, podman and the lab image (scripts/setup_podman.sh); not root:
exit 77 (skipped). Each run has its own namespace (tiers-t<random>) and
state directory (/tmp/outpost-test-tiers-*); environments and post
processes left by a crashed earlier run are removed first, by those names.

Usage: test_tiers.py /path/to/outpost /path/to/scripts/podman_service.sh [--refresh]
  --refresh: only TriggerRefresh, the minute-long test of the triggers put
  again every minute (CTest: test_tiers_refresh, label slow).
"""
import glob
import json
import re
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import alive, free_port, health_pid, request, wait_for  # noqa: E402

OUTPOST = PODMAN_SERVICE = None
NS = "tiers-t" + secrets.token_hex(3)
NODE = NS + "-node"
TPL = "c-lab"
COLD = "c-cold"  # pool min 0: its first claim is a cold start
IMAGE = "localhost/outpost-lab-c:latest"
STATE_PREFIX = "/tmp/outpost-test-tiers-"
TOKENS = {"alice": "tok-alice-" + secrets.token_hex(4), "bob": "tok-bob-" + secrets.token_hex(4)}
ADMIN = "tok-admin-" + secrets.token_hex(4)
# The broker takes events from its senders only (--senders-file): the posts,
# whose token the cluster post gets from OUTPOST_INGRESS_TOKEN and passes on
# to the node and ns posts it starts, and this test, standing in for a detector.
POSTS_TOKEN = "tok-posts-" + secrets.token_hex(4)
DET_TOKEN = "tok-det-" + secrets.token_hex(4)
QUOTA = 2
# The node post of its own (test_0_multi_node, test_8_multi_node): a
# namespace with a template that is never warm, so it costs no container.
NS2 = NS + "-b"
NODE2 = NS + "-n2"
ADVERTISED = "127.0.0.2"  # loopback too, but not the 127.0.0.1 the posts would use


def post_pids(state_dir, tier=None):
    """Pids of `outpost post` processes whose --state-dir is under state_dir."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "post" not in args or "--state-dir" not in args:
            continue
        sd = args[args.index("--state-dir") + 1]
        if sd.startswith(state_dir) and (tier is None or args[args.index("--tier") + 1] == tier):
            if alive(int(d[6:])):
                out.append(int(d[6:]))
    return out


def containers(ns_prefix):
    """{container name: state} of the environments of namespaces starting with ns_prefix."""
    r = subprocess.run(["podman", "ps", "-a", "--format", "json"], capture_output=True, text=True,
                       check=True)
    out = {}
    for c in json.loads(r.stdout or "[]"):
        ns = (c.get("Labels") or {}).get("outpost.runtime/namespace", "")
        if ns.startswith(ns_prefix):
            out[c["Names"][0]] = c["State"]
    return out


def remove_leftovers():
    """Environments and posts of this run and of crashed earlier runs."""
    for pid in post_pids(STATE_PREFIX):
        os.kill(pid, signal.SIGKILL)
    names = list(containers("tiers-t"))
    if names:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True)
    for d in glob.glob(STATE_PREFIX + "*"):
        shutil.rmtree(d, ignore_errors=True)


def start_node_post2(dir2, broker_url, trigger_api, port, ns_port, log):
    """The node post of its own (namespace NS2, node NODE2, advertised at
    ADVERTISED), as on another node: a template that is never warm, so it
    costs no container."""
    config = os.path.join(dir2, "labs2.yaml")
    with open(config, "w") as f:
        f.write(f"""\
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {{name: {COLD}}}
spec:
  image: {IMAGE}
  command: [sleep, infinity]
  pool: {{min: 0, max: 0}}
---
apiVersion: outpost.dev/v1
kind: NamespacePolicy
metadata: {{name: {NS2}}}
spec:
  onViolation: [alert]
""")
    return subprocess.Popen(
        [OUTPOST, "post", "--tier", "node", "--node", NODE2, "--namespace", NS2,
         "--listen", f"127.0.0.1:{port}", "--ns-port", str(ns_port),
         "--state-dir", os.path.join(dir2, "node2"), "--config", config,
         "--broker-url", broker_url, "--trigger-api", trigger_api,
         "--advertise-host", ADVERTISED],
        stdout=log, stderr=subprocess.STDOUT)


def wait_node_post2(proc, port, ns_port):
    wait_for("node post 2", lambda: health_pid(port) == proc.pid)
    wait_for("its ns post", lambda: health_pid(ns_port))


class Tiers(unittest.TestCase):
    """One platform for the whole class; the tests run in name order and build on each other."""

    @classmethod
    def setUpClass(cls):
        remove_leftovers()
        cls.dir = tempfile.mkdtemp(prefix=STATE_PREFIX)
        cls.log_path = os.path.join(cls.dir, "posts.log")
        cls.log = open(cls.log_path, "ab")
        cls.bport, cls.cport, cls.nport, cls.nsport = (free_port() for _ in range(4))
        with open(os.path.join(cls.dir, "labs.yaml"), "w") as f:
            f.write(f"""\
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {{name: {TPL}}}
spec:
  image: {IMAGE}
  command: [sleep, infinity]
  limits: {{pids: 64, memory: 128Mi}}
  pool: {{min: 1, max: 2}}
---
apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {{name: {COLD}}}
spec:
  image: {IMAGE}
  command: [sleep, infinity]
  limits: {{pids: 64, memory: 128Mi}}
  pool: {{min: 0, max: 1}}
---
apiVersion: outpost.dev/v1
kind: NamespacePolicy
metadata: {{name: {NS}}}
spec:
  onViolation: [alert, recycle]
  quarantineAfter: 2
""")
        with open(os.path.join(cls.dir, "senders"), "w") as f:
            f.write(f"posts {POSTS_TOKEN} dev.outpost.\ndetector {DET_TOKEN} dev.outpost.\n")
        # No triggers here: the posts register theirs (test_0_triggers).
        cls.broker = cls.start_broker()
        wait_for("the broker", lambda: request(cls.bport, "GET", "/healthz", timeout=2)[0] == 200)
        cls.cluster = cls.start_cluster()
        cls.extra = []  # more processes (test_0_multi_node), stopped by test_8_multi_node

    @classmethod
    def start_broker(cls):
        return subprocess.Popen(
            [OUTPOST, "broker", "--listen", f"127.0.0.1:{cls.bport}", "--data",
             os.path.join(cls.dir, "broker.db"), "--broker", "default/default",
             "--senders-file", os.path.join(cls.dir, "senders")],
            stdout=cls.log, stderr=subprocess.STDOUT)

    @classmethod
    def start_cluster(cls):
        args = [OUTPOST, "post", "--tier", "cluster", "--listen", f"127.0.0.1:{cls.cport}",
                "--node-listen", f"127.0.0.1:{cls.nport}", "--ns-port", str(cls.nsport),
                "--node", NODE, "--namespace", NS, "--state-dir", os.path.join(cls.dir, "state"),
                "--config", os.path.join(cls.dir, "labs.yaml"),
                "--broker-url", f"http://127.0.0.1:{cls.bport}/default/default",
                "--admin-token", ADMIN, "--quota", str(QUOTA)]
        for t, tok in TOKENS.items():
            args += ["--tenant-token", f"{t}={tok}"]
        # The log is a file, not a pipe: children outlive a killed parent and
        # must never block on a pipe nobody reads.
        proc = subprocess.Popen(args, stdout=cls.log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, OUTPOST_INGRESS_TOKEN=POSTS_TOKEN))
        wait_for("the cluster post", lambda: health_pid(cls.cport) == proc.pid)
        wait_for("the node post", lambda: health_pid(cls.nport))
        wait_for("the ns post", lambda: health_pid(cls.nsport))
        return proc

    @classmethod
    def tearDownClass(cls):
        for proc in cls.extra:  # left by a test that failed half-way
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
        rc = None
        if cls.cluster.poll() is None:
            cls.cluster.send_signal(signal.SIGTERM)
            rc = cls.cluster.wait(timeout=60)
        # SIGTERM to the cluster post stops its subtree: nothing may be left.
        left = post_pids(cls.dir)
        cls.broker.send_signal(signal.SIGTERM)
        cls.broker.wait(timeout=30)
        cls.log.close()
        with open(cls.log_path, errors="replace") as f:
            text = f.read()
        remove_leftovers()
        if os.environ.get("TIERS_TEST_LOG"):
            print(text)
        assert rc == 0, f"cluster post exited {rc}"
        assert not left, f"posts left running after the cluster post stopped: {left}"
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in text, f"{bad} in the posts' log:\n{text[-4000:]}"

    # ------------------------------------------------------------- helpers

    def labs(self, method, path="", body=None, tenant="alice", token=None, port=None, **kw):
        tok = token if token is not None else (ADMIN if tenant == "admin" else TOKENS[tenant])
        return request(port or self.cport, method, "/v1/labs" + path, body=body, token=tok, **kw)

    def env(self, method, name="", path="", body=None, tpl=TPL, **kw):
        """A request to /v1/labs/<tpl>/environments[/<name>[<path>]]."""
        return self.labs(method, f"/{tpl}/environments" + (f"/{name}" if name else "") + path,
                         body=body, **kw)

    def progress(self, name, tenant="alice", tpl=TPL, port=None):
        """The events of GET .../progress (server-sent events, one data: line each)."""
        st, text, h = self.env("GET", name, "/progress", tenant=tenant, tpl=tpl, timeout=120,
                               port=port)
        self.assertEqual(st, 200, text)
        self.assertTrue(h.get("Content-Type", "").startswith("text/event-stream"), h)
        # Streamed as the steps happen (tests/unit/test_httpd_stream shows
        # the parts arrive as made): a body of unknown length, chunked.
        self.assertEqual(h.get("Transfer-Encoding"), "chunked", h)
        return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]

    def claim(self, tenant, tpl=TPL, port=None):
        """A claim, warm (201) or cold (202, then followed until ready): the environment."""
        st, j, h = self.env("POST", tenant=tenant, tpl=tpl, timeout=180, port=port)
        self.assertIn(st, (201, 202), j)
        if st == 201:
            self.assertEqual(j["status"], "ready", j)
            return j
        self.assertEqual(h.get("Location"), f"/v1/labs/{tpl}/environments/{j['name']}", h)
        self.assertTrue(self.progress(j["name"], tenant, tpl, port=port)[-1]["ready"])
        st, j, _ = self.env("GET", j["name"], tenant=tenant, tpl=tpl, port=port)
        self.assertEqual((st, j["status"]), (200, "ready"), j)
        return j

    def running(self, lab, tenant):
        return containers(NS).get(f"{NS}_{lab}__{tenant}") == "running"

    def publish(self, ev_id, tenant, env, ns=NS, **ext):
        h = {"ce-specversion": "1.0", "ce-id": ev_id, "ce-source": f"/nodes/{NODE}/environments/{env}",
             "ce-type": "dev.outpost.process.exec", "ce-namespace": ns, "ce-tenant": tenant,
             "ce-environment": env, "Content-Type": "application/json",
             "Authorization": f"Bearer {DET_TOKEN}"}
        h.update({"ce-" + k: v for k, v in ext.items()})
        st, j, _ = request(self.bport, "POST", "/default/default", body='{"binary":"/bin/nc"}',
                           headers=h)
        self.assertEqual(st, 202, j)

    # ------------------------------------------------------------- tests

    def test_0_flags(self):
        for args, why in ((["post"], "--tier"), (["post", "--tier", "node"], "--node"),
                          (["post", "--tier", "node", "--node", "Node_1"], "DNS subdomain"),
                          (["post", "--tier", "node", "--node", "a..b"], "DNS subdomain"),
                          (["post", "--tier", "node", "--node", "n" * 64], "at most 63"),
                          (["post", "--tier", "ns"], "--namespace"),
                          (["post", "--tier", "cluster", "--quota", "x"], "--quota"),
                          (["post", "--tier", "cluster", "--bogus"], "usage"),
                          (["post", "--tier", "node", "--advertise-host", "h:1"], "--advertise-host"),
                          (["post", "--tier", "cluster", "--listen", "[::1]:8090"], "--listen"),
                          (["post", "--tier", "cluster", "--listen", "localhost:8090"], "--listen"),
                          (["post", "--tier", "node", "--trigger-api", "https://h"], "--trigger-api"),
                          (["post", "--tier", "cluster", "--node-post-service", "svc"],
                           "--node-post-service"),
                          (["post", "--tier", "ns", "--namespace", "a", "--ingress-token", "a\nb"],
                           "the ingress token is visible characters only")):
            r = subprocess.run([OUTPOST, *args], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(why, r.stderr)
        r = subprocess.run([OUTPOST, "post", "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--tier cluster|node|ns", r.stdout)
        # A post that cannot start exits 1 (and is then restarted with backoff by its parent).
        # Its node's name has dots, as on EKS: accepted (not 2).
        r = subprocess.run([OUTPOST, "post", "--tier", "node", "--node",
                            "ip-10-0-1-7.us-west-2.compute.internal", "--socket",
                            "/nonexistent.sock", "--state-dir", os.path.join(self.dir, "bad"),
                            "--listen", f"127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_0_multi_node(self):
        """A node post of its own, as on another node: its trigger is put at
        --trigger-api (its --broker-url is an ingress, which has no trigger
        API), named for its node and filtering on it, delivering to
        --advertise-host (TriggerRefresh: put again every minute)."""
        cls = type(self)
        cls.iport, cls.n2port, cls.ns2port = free_port(), free_port(), free_port()
        # Not under cls.dir: post_pids(cls.dir, ...) counts the platform's posts.
        cls.dir2 = tempfile.mkdtemp(prefix=STATE_PREFIX + "m-")
        cls.log2_path = os.path.join(self.dir2, "node2.log")
        with open(cls.log2_path, "ab") as log2:
            ingress = subprocess.Popen(
                [OUTPOST, "broker", "--role", "ingress", "--listen", f"127.0.0.1:{self.iport}",
                 "--data", os.path.join(self.dir2, "ingress.db"), "--broker", "default/default"],
                stdout=log2, stderr=subprocess.STDOUT)
            cls.extra.append(ingress)
            wait_for("the ingress", lambda: request(self.iport, "GET", "/healthz")[0] == 200)
            node2 = start_node_post2(self.dir2, f"http://127.0.0.1:{self.iport}/default/default",
                                     f"http://127.0.0.1:{self.bport}/", self.n2port,
                                     self.ns2port, log2)
            cls.extra.insert(0, node2)  # stopped before the ingress
        wait_node_post2(node2, self.n2port, self.ns2port)
        name = f"ns-{NS2}-{NODE2}"
        tr = wait_for("the node post's trigger at the trigger API",
                      lambda: (r := request(self.bport, "GET", f"/v1/triggers/default/{name}"))[0]
                      == 200 and r[1])
        # The namespace's events of this node, and its quarantine events
        # (which carry no node: every ns post of the namespace keeps the set).
        self.assertEqual((tr["spec"]["subscriber"]["uri"], tr["spec"].get("filter"),
                          tr["spec"]["filters"]),
                         (f"http://{ADVERTISED}:{self.ns2port}/events", None,
                          [{"exact": {"namespace": NS2}},
                           {"any": [{"exact": {"node": NODE2}},
                                    {"prefix": {"type": "dev.outpost.quarantine."}}]}]), tr)
        self.assertEqual(request(self.bport, "GET", f"/v1/triggers/default/ns-{NS2}")[0], 404)
        self.assertEqual(request(self.iport, "GET", "/v1/triggers")[0], 404, "no trigger API there")
        with open(self.log2_path, errors="replace") as f:
            text = f.read()
        self.assertIn(f"triggers registered at http://127.0.0.1:{self.bport}/v1/triggers: "
                      f"default/{name}", text)
        # Delivered at the advertised host; another node's events are not.
        self.publish("m-1", "dave", "x", ns=NS2, node="elsewhere", action="killed",
                     partitionkey="m")
        self.publish("m-2", "carol", "x", ns=NS2, node=NODE2, action="killed", partitionkey="m")
        violations = lambda: request(self.ns2port, "GET", "/v1/violations")[1]["violations"]  # noqa: E731
        wait_for("carol's violation at the ns post", lambda: violations().get("carol"))
        time.sleep(1)  # dave's, were it delivered, would have come first (one key, in order)
        self.assertEqual(violations(), {"carol": 1})
        st, tr, _ = request(self.bport, "GET", f"/v1/triggers/default/{name}")
        self.assertEqual(tr["status"]["delivered"], 1, tr)

    def test_0_senders(self):
        """The posts' events reach the broker as its sender "posts": the
        cluster post's token (from OUTPOST_INGRESS_TOKEN), which it passes on
        to its node and ns posts. A POST without a token is refused 401, and
        no post's ever was."""
        def metric(name):
            text = request(self.bport, "GET", "/metrics")[1]
            m = re.search(r"^" + re.escape(name) + r" (\d+)$", text, re.M)
            return int(m.group(1)) if m else None
        wait_for("the posts' events counted as theirs",
                 lambda: metric('outpost_ingress_sender_events_total{sender="posts"}'))
        st, j, h = request(self.bport, "POST", "/default/default", body="{}", headers={
            "ce-specversion": "1.0", "ce-id": "no-token", "ce-source": "/x",
            "ce-type": "dev.outpost.process.exec", "Content-Type": "application/json"})
        self.assertEqual(st, 401, j)
        self.assertEqual(metric('outpost_ingress_requests_rejected_total{reason="unauthorized"}'),
                         1, "only the test's own POST")
        self.assertEqual(metric('outpost_ingress_requests_rejected_total{reason="forbidden"}'), 0)

    def test_0_triggers(self):
        """The posts registered the triggers that feed them at the broker."""
        def triggers():
            st, j, _ = request(self.bport, "GET", "/v1/triggers/default")
            return st == 200 and {t["metadata"]["name"]: t for t in j}
        want = {f"ns-{NS}", "cluster-post"}
        got = wait_for("the posts' triggers", lambda: (t := triggers()) and want <= set(t) and t)
        ns, cluster = got[f"ns-{NS}"]["spec"], got["cluster-post"]["spec"]
        self.assertEqual((ns["broker"], ns["subscriber"]["uri"], ns["filter"]),
                         ("default", f"http://127.0.0.1:{self.nsport}/events",
                          {"attributes": {"namespace": NS}}), ns)
        self.assertEqual((cluster["broker"], cluster["subscriber"]["uri"], cluster["filters"]),
                         ("default", f"http://127.0.0.1:{self.cport}/events",
                          [{"prefix": {"type": "dev.outpost.quarantine."}}]), cluster)
        # Retried while the broker is away: both posts say it once, when done.
        with open(self.log_path, errors="replace") as f:
            text = f.read()
        self.assertEqual(text.count("triggers registered at"), 2, text[-3000:])

    def test_1_labs_api(self):
        # The pool fills to its min of 1 first, so that the first claim is warm.
        wait_for("a warm environment", lambda: (request(self.nport, "GET", "/v1/capacity")[1] or {})
                 .get("warm", {}).get(TPL), timeout=120)
        st, j, _ = self.labs("GET")
        tpls = {t["name"]: t for t in j["templates"]}
        self.assertEqual((tpls[TPL]["image"], tpls[TPL]["pool"], tpls[TPL]["limits"]["pids"]),
                         (IMAGE, {"min": 1, "max": 2}, 64), j)
        self.assertGreaterEqual(tpls[TPL]["warm"], 1)
        self.assertEqual(tpls[COLD]["warm"], 0)
        st, a, _ = self.env("POST", timeout=180)
        self.assertEqual((st, a["warm"], a["status"]), (201, True, "ready"), a)
        print(f"\n  claim: warm={a['warm']} elapsed={a['elapsed_us'] / 1000:.1f} ms on {a['node']}")
        self.assertEqual((a["tenant"], a["template"], a["node"]), ("alice", TPL, NODE))
        self.assertNotIn("id", a)  # the runtime's id stays inside
        type(self).lab = a["name"]
        st, j, _ = self.env("POST", a["name"], "/exec",
                             {"argv": ["sh", "-c", "echo hello; echo oops >&2; exit 3"]})
        self.assertEqual((st, j["exit_code"], j["stdout"], j["stderr"]), (200, 3, "hello\n", "oops\n"))
        st, j, _ = self.env("GET", a["name"])
        self.assertEqual((st, j["state"], j["status"], j["tenant"]), (200, "claimed", "ready", "alice"))
        self.assertEqual(j["exec_url"], f"/v1/labs/{TPL}/environments/{a['name']}/exec")
        self.assertIn("last_activity_unix_ms", j)
        # Already ready: one ready event.
        self.assertEqual([e["ready"] for e in self.progress(a["name"])], [True])
        # Another tenant: not found, whatever the verb, and not in its list.
        for method, path, body in (("GET", "", None), ("DELETE", "", None),
                                   ("POST", "/exec", {"argv": ["true"]}),
                                   ("POST", "/keepalive", None), ("GET", "/progress", None)):
            st, j, _ = self.env(method, a["name"], path, body, tenant="bob")
            self.assertEqual(st, 404, (method, path, j))
            self.assertIn("error", j)
        self.assertEqual(self.env("GET", tenant="bob")[1]["environments"], [])
        self.assertEqual([x["name"] for x in self.env("GET")[1]["environments"]], [a["name"]])
        self.assertEqual(self.env("GET", tpl=COLD)[1]["environments"], [])
        self.assertIn(a["name"], [x["name"] for x in self.env("GET", tenant="admin")[1]["environments"]])
        # Under another template's path: not found either.
        self.assertEqual(self.env("GET", a["name"], tpl=COLD)[0], 404)
        self.assertTrue(self.running(a["name"], "alice"))
        # Tokens.
        for tok in ("nope", ""):
            st, j, h = self.labs("GET", token=tok)
            self.assertEqual(st, 401, j)
            self.assertIn("error", j)
        self.assertEqual(request(self.cport, "GET", "/v1/labs")[0], 401)
        # Bad requests name the field; unknown template 404; too large 413.
        st, j, _ = self.env("POST", tpl="Bad_Template")
        self.assertEqual((st, j.get("field")), (400, "template"), j)
        st, j, _ = self.env("POST", body="not json", headers={"Content-Type": "application/json"})
        self.assertEqual(st, 400, j)
        st, j, _ = self.env("POST", a["name"], "/exec", {"argv": []})
        self.assertEqual((st, j.get("field")), (400, "argv"), j)
        st, j, _ = self.env("POST", tpl="no-such-template")
        self.assertEqual(st, 404, j)
        st, j, _ = self.env("POST", body={"x": "x" * 400000})
        self.assertEqual(st, 413, j)
        self.assertEqual(self.labs("POST", body={"template": TPL})[0], 405)  # the old route
        # A claim at zero: 202 at once with a progress URL, then ready.
        t0 = time.monotonic()
        st, b, h = self.env("POST", tpl=COLD, timeout=180)
        took = time.monotonic() - t0
        self.assertEqual((st, b["status"]), (202, "pending"), b)
        self.assertEqual(b["progress"], f"/v1/labs/{COLD}/environments/{b['name']}/progress")
        self.assertEqual(h.get("Location"), f"/v1/labs/{COLD}/environments/{b['name']}")
        st, j, _ = self.env("GET", b["name"], tpl=COLD)
        self.assertEqual(st, 200, j)
        self.assertIn(j["status"], ("pending", "ready"), j)
        for method, path, body in (("GET", "", None), ("GET", "/progress", None),
                                   ("DELETE", "", None)):
            self.assertEqual(self.env(method, b["name"], path, body, tenant="bob", tpl=COLD)[0], 404)
        events = self.progress(b["name"], tpl=COLD)
        print(f"  cold start: 202 in {took * 1000:.0f} ms; progress {[e['progress'] for e in events]}")
        self.assertEqual(events[0]["progress"], 10, events)
        self.assertEqual((events[-1]["progress"], events[-1]["ready"]), (100, True), events)
        self.assertTrue(all(not e["ready"] for e in events[:-1]), events)
        st, j, _ = self.env("GET", b["name"], tpl=COLD)
        self.assertEqual((st, j["status"], j["state"]), (200, "ready", "claimed"), j)
        self.assertEqual(self.env("POST", b["name"], "/keepalive", tpl=COLD)[0], 204)
        # Quota: the second lab is the last, then 429 with a reason and Retry-After.
        st, j, h = self.env("POST")
        self.assertEqual((st, j["quota"], j["used"]), (429, QUOTA, QUOTA), j)
        self.assertIn("quota", j["error"])
        self.assertIn("Retry-After", h)
        st, _, _ = self.env("DELETE", b["name"], tpl=COLD)
        self.assertEqual(st, 204)
        self.assertEqual(self.env("GET", b["name"], tpl=COLD)[0], 404)
        wait_for("the released environment removed", lambda: not self.running(b["name"], "alice"))

    def test_2_kill_node_post(self):
        node, ns = health_pid(self.nport), health_pid(self.nsport)
        t0 = time.monotonic()
        os.kill(node, signal.SIGKILL)
        wait_for("the node post to die", lambda: not alive(node), timeout=5, step=0.01)
        # The environment does not notice.
        self.assertTrue(self.running(self.lab, "alice"))
        new = wait_for("a new node post", lambda: (p := health_pid(self.nport)) and p != node and p,
                       timeout=10, step=0.02)
        took = time.monotonic() - t0
        print(f"\n  node post {node} killed; {new} answers after {took * 1000:.0f} ms")
        self.assertLess(took, 5.0)
        # Its pool is recovered from the runtime: the claim is still alice's.
        st, j, _ = wait_for("the lab through the API", lambda: (r := self.env("GET", self.lab))[0] == 200 and r)
        self.assertEqual((j["tenant"], j["state"]), ("alice", "claimed"))
        st, envs, _ = request(self.nport, "GET", f"/v1/environments/{self.lab}")
        self.assertTrue(envs["recovered"], envs)
        st, j, _ = self.env("POST", self.lab, "/exec", {"argv": ["echo", "back"]})
        self.assertEqual((st, j["stdout"]), (200, "back\n"), j)
        # The ns post was adopted, not restarted; the cluster post did not move.
        self.assertEqual(health_pid(self.nsport), ns)
        self.assertEqual(health_pid(self.cport), self.cluster.pid)
        self.assertEqual(len(post_pids(self.dir, "node")), 1)

    def test_3_kill_ns_post(self):
        node, ns = health_pid(self.nport), health_pid(self.nsport)
        t0 = time.monotonic()
        os.kill(ns, signal.SIGKILL)
        new = wait_for("a new ns post", lambda: (p := health_pid(self.nsport)) and p != ns and p,
                       timeout=10, step=0.02)
        print(f"\n  ns post {ns} killed; {new} answers after {(time.monotonic() - t0) * 1000:.0f} ms")
        self.assertEqual(health_pid(self.nport), node)
        self.assertEqual(health_pid(self.cport), self.cluster.pid)
        self.assertTrue(self.running(self.lab, "alice"))
        self.assertEqual(self.env("GET", self.lab)[0], 200)

    def test_4_policy(self):
        lab = self.claim("bob")["name"]
        # A redelivered event (same source and id) counts once.
        self.publish("v-1", "bob", lab, severity="critical", action="killed")
        self.publish("v-1", "bob", lab, severity="critical", action="killed")
        # Not violations: info events, tenants' own events, other namespaces.
        self.publish("v-info", "bob", lab, severity="info", action="none")
        st, j, _ = request(self.bport, "POST", "/default/default", body="{}", headers={
            "ce-specversion": "1.0", "ce-id": "t-1", "ce-source": "/tenants/bob",
            "ce-type": "dev.outpost.tenant.x", "ce-namespace": NS, "ce-tenant": "bob",
            "ce-severity": "critical", "Content-Type": "application/json",
            "Authorization": f"Bearer {DET_TOKEN}"})
        self.assertEqual(st, 202)
        # recycle: the node post releases the environment.
        wait_for("bob's lab recycled", lambda: self.env("GET", lab, tenant="bob")[0] == 404)
        violations = lambda: request(self.nsport, "GET", "/v1/violations")[1]
        self.assertEqual(violations()["violations"], {"bob": 1})
        self.assertEqual(violations()["quarantined"], [])
        self.assertEqual(self.claim("bob")["tenant"], "bob")  # not quarantined yet
        self.publish("v-2", "bob", "gone", action="killed")
        wait_for("bob quarantined at the cluster post",
                 lambda: "bob" in (request(self.cport, "GET", "/v1/quarantine", token=ADMIN)[1]
                                   or {}).get("quarantined", []))
        st, j, _ = self.env("POST", tenant="bob")
        self.assertEqual(st, 403, j)
        self.assertIn("quarantined", j["error"])
        type(self).lab2 = self.claim("alice")["name"]  # others are not quarantined
        # The quarantine is not a tenant's business.
        self.assertEqual(request(self.cport, "GET", "/v1/quarantine", token=TOKENS["bob"])[0], 404)
        # The ns post's own announcement comes back through its trigger.
        wait_for("the announcement confirmed", lambda: violations()["announcing"] == [])
        # The counts survive a kill -9 of the ns post (the state file).
        ns = health_pid(self.nsport)
        os.kill(ns, signal.SIGKILL)
        wait_for("a new ns post", lambda: (p := health_pid(self.nsport)) and p != ns)
        self.assertEqual(violations()["violations"], {"bob": 2})
        self.assertEqual(violations()["quarantined"], ["bob"])
        # An operator lifts it; the ns post hears of it through the broker.
        st, _, _ = request(self.cport, "DELETE", "/v1/quarantine/bob", token=ADMIN)
        self.assertEqual(st, 204)
        self.assertEqual(self.claim("bob")["tenant"], "bob")
        wait_for("the ns post's count reset", lambda: violations()["violations"] == {})
        st, m, _ = request(self.nsport, "GET", "/metrics")
        self.assertEqual(st, 200)

    def test_5_kill_cluster_post(self):
        cluster = type(self).cluster
        node, ns = health_pid(self.nport), health_pid(self.nsport)
        cluster.send_signal(signal.SIGKILL)
        cluster.wait()
        time.sleep(0.5)
        # The subtree does not notice.
        self.assertEqual((health_pid(self.nport), health_pid(self.nsport)), (node, ns))
        self.assertTrue(self.running(self.lab, "alice"))
        st, j, _ = request(self.nport, "GET", "/v1/environments?tenant=alice&state=claimed")
        self.assertIn(self.lab, [e["name"] for e in j["environments"]])
        # A new cluster post adopts the running node post instead of starting one.
        type(self).cluster = self.start_cluster()
        self.assertEqual(health_pid(self.nport), node)
        self.assertEqual(post_pids(self.dir, "node"), [node])
        st, j, _ = self.env("GET", self.lab)
        self.assertEqual((st, j["tenant"]), (200, "alice"))
        # And it supervises it: a kill -9 is restarted by the new parent.
        os.kill(node, signal.SIGKILL)
        wait_for("the adopted node post restarted",
                 lambda: (p := health_pid(self.nport)) and p != node, timeout=10)
        wait_for("the lab back", lambda: self.env("GET", self.lab)[0] == 200)

    def test_6_publisher_retries(self):
        """Events made while the broker is down reach it once it is back."""
        self.broker.send_signal(signal.SIGKILL)
        self.broker.wait()
        st, _, _ = self.env("DELETE", self.lab2)
        self.assertEqual(st, 204)
        time.sleep(1)  # a few attempts fail meanwhile
        # The triggers the posts registered are kept by the broker (triggers.json
        # beside --data): the posts do not register them again.
        type(self).broker = self.start_broker()

        def released():
            db = sqlite3.connect(os.path.join(self.dir, "broker.db"))
            try:
                rows = db.execute("SELECT headers FROM records").fetchall()
            except sqlite3.Error:
                return False
            finally:
                db.close()
            return any(b"dev.outpost.environment.released" in h and self.lab2.encode() in h
                       for (h,) in rows)
        wait_for("the released event in the broker's log", released, timeout=30, step=0.2)
        st, m, _ = request(self.nport, "GET", "/metrics")
        retries = [float(l.split()[1]) for l in m.splitlines()
                   if l.startswith("outpost_post_publish_retries_total ")]
        print(f"\n  node post: {retries[0]:.0f} publish attempts retried while the broker was down")
        self.assertGreater(retries[0], 0)

    def test_7_crash_loop_backoff(self):
        """A child that keeps dying at start is held back, not respun."""
        port = free_port()
        proc = subprocess.Popen(
            [OUTPOST, "post", "--tier", "cluster", "--listen", f"127.0.0.1:{port}",
             "--node-listen", f"127.0.0.1:{free_port()}", "--node", NODE + "-bad",
             "--namespace", NS, "--socket", "/nonexistent.sock",
             "--state-dir", os.path.join(self.dir, "crashloop"),
             "--broker-url", f"http://127.0.0.1:{self.bport}/default/default",
             "--no-register-triggers"],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for("the cluster post", lambda: health_pid(port) == proc.pid)
            time.sleep(4)
            # --no-register-triggers: the first cluster post's trigger is still its own.
            st, tr, _ = request(self.bport, "GET", "/v1/triggers/default/cluster-post")
            self.assertEqual((st, tr["spec"]["subscriber"]["uri"]),
                             (200, f"http://127.0.0.1:{self.cport}/events"), tr)
            st, m, _ = request(port, "GET", "/metrics")
            restarts = [float(l.split()[1]) for l in m.splitlines()
                        if l.startswith('outpost_post_children_total{how="restarted"}')][0]
            print(f"\n  a node post that cannot start: {restarts:.0f} restarts in 4 s")
            # 3 at once, then after 0.5 s, 1 s, 2 s: at most about 6; without the
            # backoff it would be tens.
            self.assertGreaterEqual(restarts, 3)
            self.assertLessEqual(restarts, 8)
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0)


    def test_8_multi_node(self):
        """A second cluster post with --node-post-service finds the running
        node post, starts none of its own, and lists and claims on it; then
        the processes of test_0_multi_node stop."""
        cls = type(self)
        c2port = free_port()
        c2state = os.path.join(self.dir2, "cluster2")
        c2log = os.path.join(self.dir2, "cluster2.log")
        args = [OUTPOST, "post", "--tier", "cluster", "--listen", f"127.0.0.1:{c2port}",
                "--node-post-service", f"127.0.0.1:{self.nport}", "--namespace", NS,
                "--state-dir", c2state, "--config", os.path.join(self.dir, "labs.yaml"),
                "--broker-url", f"http://127.0.0.1:{self.bport}/default/default",
                "--no-register-triggers", "--admin-token", ADMIN, "--quota", str(QUOTA)]
        for t, tok in TOKENS.items():
            args += ["--tenant-token", f"{t}={tok}"]
        with open(c2log, "ab") as log:
            cluster2 = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, OUTPOST_INGRESS_TOKEN=POSTS_TOKEN))
        cls.extra.insert(0, cluster2)
        wait_for("cluster post 2", lambda: health_pid(c2port) == cluster2.pid)
        time.sleep(1)  # a node post of its own would have been started by now
        with open(c2log, errors="replace") as f:
            text = f.read()
        self.assertIn(f"node post found at http://127.0.0.1:{self.nport}", text)
        self.assertNotIn("started node post", text)
        self.assertNotIn("adopted node post", text)
        self.assertEqual(post_pids(c2state), [cluster2.pid], "no node post of its own")
        self.assertEqual(health_pid(c2port + 1), None)
        # The same labs through either cluster post.
        names = lambda port: sorted(e["name"] for e in self.env("GET", port=port)[1]["environments"])  # noqa: E731
        self.assertIn(self.lab, names(c2port))
        self.assertEqual(names(c2port), names(self.cport))
        self.assertIn(COLD, [t["name"] for t in self.labs("GET", port=c2port)[1]["templates"]])
        # A claim through it lands on the node post it found.
        j = self.claim("alice", COLD, port=c2port)
        self.assertEqual(j["node"], NODE, j)
        st, k, _ = self.env("GET", j["name"], tpl=COLD)
        self.assertEqual((st, k["tenant"]), (200, "alice"), k)
        st, k, _ = self.env("POST", j["name"], "/exec", {"argv": ["echo", "two"]}, tpl=COLD,
                            port=c2port)
        self.assertEqual((st, k["stdout"]), (200, "two\n"), k)
        self.assertEqual(self.env("DELETE", j["name"], tpl=COLD, port=c2port)[0], 204)
        self.assertEqual(self.env("GET", j["name"], tpl=COLD)[0], 404)

        for proc in list(cls.extra):  # cluster post 2, node post 2, the ingress
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=60), 0, proc.args)
            cls.extra.remove(proc)
        self.assertEqual(post_pids(self.dir2), [], "the node post's ns post stopped too")


class TriggerRefresh(unittest.TestCase):
    """Slow (a minute; CTest's test_tiers_refresh, label slow): a post puts
    its triggers again every minute, so a broker restarted without its
    trigger state has them back within the minute, and the post's log says
    nothing of the refreshes. A broker and a node post whose template is
    never warm: no container."""

    def test_put_again_within_the_minute(self):
        remove_leftovers()
        d = tempfile.mkdtemp(prefix=STATE_PREFIX + "r-")
        bport, nport, nsport = free_port(), free_port(), free_port()
        log_path = os.path.join(d, "posts.log")
        broker_args = [OUTPOST, "broker", "--listen", f"127.0.0.1:{bport}",
                       "--data", os.path.join(d, "broker.db"), "--broker", "default/default"]
        procs = []
        name = f"ns-{NS2}-{NODE2}"
        trigger = lambda: (r := request(bport, "GET", f"/v1/triggers/default/{name}"))[0] == 200 and r[1]  # noqa: E731
        try:
            with open(log_path, "ab") as log:
                procs.append(subprocess.Popen(broker_args, stdout=log, stderr=subprocess.STDOUT))
                wait_for("the broker", lambda: request(bport, "GET", "/healthz")[0] == 200)
                node = start_node_post2(d, f"http://127.0.0.1:{bport}/default/default",
                                        f"http://127.0.0.1:{bport}", nport, nsport, log)
                procs.insert(0, node)
                wait_node_post2(node, nport, nsport)
                wait_for("the node post's trigger", trigger)
                registered = time.monotonic()
                # The broker restarted without its trigger state (triggers.json
                # beside --data), as a dispatcher on an emptyDir would be.
                procs[-1].send_signal(signal.SIGTERM)
                self.assertEqual(procs[-1].wait(timeout=30), 0)
                os.remove(os.path.join(d, "triggers.json"))
                procs[-1] = subprocess.Popen(broker_args, stdout=log, stderr=subprocess.STDOUT)
            wait_for("the broker back", lambda: request(bport, "GET", "/healthz")[0] == 200)
            self.assertFalse(trigger(), "the restarted broker has no trigger")
            tr = wait_for("the trigger put again", trigger,
                          timeout=70 - (time.monotonic() - registered), step=0.5)
            print(f"\n  trigger {name} put again {time.monotonic() - registered:.0f} s "
                  "after it was first registered")
            self.assertEqual(tr["spec"]["subscriber"]["uri"], f"http://{ADVERTISED}:{nsport}/events")
            # Said once each way: a refresh is news only after a failure
            # (were the broker's restart to fall on one). The post logs its
            # success after the broker has stored the trigger: wait for it.
            def counts():
                with open(log_path, errors="replace") as f:
                    text = f.read()
                said = text.count(f"triggers registered at http://127.0.0.1:{bport}/v1/triggers: "
                                  f"default/{name}")
                # A failure before the first success ("... yet") is not
                # followed by a second "registered"; one after ("... again") is.
                again = sum(1 for line in text.splitlines()
                            if "cannot register triggers at" in line and " again (" in line)
                return said, 1 + again, text

            try:
                wait_for("the log to say it", lambda: (c := counts())[0] == c[1], timeout=5)
            except AssertionError:
                pass
            said, want, text = counts()
            self.assertEqual(said, want, text[-3000:])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
            left = post_pids(d)
            remove_leftovers()
        self.assertEqual([proc.returncode for proc in procs], [0, 0])
        self.assertEqual(left, [], "the node post's ns post stopped with it")


def load_tests(loader, standard_tests, pattern):
    """Tiers, or with --refresh only TriggerRefresh (CTest runs them as two
    entries, the second labelled slow)."""
    return loader.loadTestsFromTestCase(TriggerRefresh if REFRESH else Tiers)


REFRESH = False


def main():
    global OUTPOST, PODMAN_SERVICE, REFRESH
    if len(sys.argv) < 3:
        sys.exit("usage: test_tiers.py OUTPOST PODMAN_SERVICE_SH [--refresh]")
    OUTPOST, PODMAN_SERVICE = sys.argv[1], sys.argv[2]
    REFRESH = sys.argv[3:] == ["--refresh"]
    if os.geteuid() != 0:
        print("skipped: needs root (podman)")
        sys.exit(77)
    subprocess.run([PODMAN_SERVICE, "start"], check=True)
    unittest.main(argv=sys.argv[:1], verbosity=2)


if __name__ == "__main__":
    main()
