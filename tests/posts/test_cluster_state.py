#!/usr/bin/env python3
"""The cluster post alone, without podman (no triggers registered).

- Its quarantine file (cluster.json in --state-dir) read back at start-up,
  its node post address answering nothing: a full set (1024 tenants with
  63-byte names: more than the 64 KiB an earlier reader took) comes back
  whole; a file that is not the quarantine is said in the log, and the post
  starts with no tenant quarantined.
- Its node posts asked side by side: two FAKE node posts (Python HTTP
  servers standing in for `outpost post --tier node`, which needs podman)
  each hold a request open until the other has one too, or 1.5 s; the
  templates, the list of labs and a lab's lookup each find both requests
  in flight at once, and the answers combine both nodes. Asked one after
  the other, no request would ever meet the other's.
- Node posts found through --node-post-service (a name in /etc/hosts, put
  back at the end, whose addresses the test changes): one that goes is
  said gone, and a new address takes the place of one gone longer than
  --node-post-forget.

Usage: test_cluster_state.py /path/to/outpost
"""
import json
import os
import subprocess
import sys
import http.server
import secrets
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import free_port, request, stop_process, wait_for  # noqa: E402

OUTPOST = None
ADMIN = "tok-admin-state"
LABS = """apiVersion: outpost.dev/v1
kind: LabTemplate
metadata: {name: c-lab}
spec: {image: localhost/outpost-lab-c:latest}
"""


class FakeNodePosts:
    """FAKE node posts: n HTTP servers answering a node post's GET
    /v1/capacity, /v1/environments and /v1/environments/<name> from canned
    data. Each request waits until requests are in flight on all n servers
    at once (or 1.5 s, under the cluster post's 2 s timeout), and the most
    seen in flight together is kept in `overlap`."""

    def __init__(self, n, hosts=None, port=0, gather=True):
        """n fakes on 127.0.0.1 (free ports), or one on each of hosts at
        port; gather: hold each request as said above."""
        self.n, self.gather, self.cv = n, gather, threading.Condition()
        self.in_flight, self.overlap, self.servers = 0, 0, []
        for i in range(n):
            self.servers.append(self._serve(i, hosts[i] if hosts else "127.0.0.1", port))

    def _answer(self, i, path):
        env = {"name": f"c-lab-node{i}", "template": "c-lab", "tenant": "alice",
               "state": "claimed", "node": f"node{i}", "idle_ms": 1000}
        if path == "/v1/capacity":
            return 200, {"free": 4, "warm": {"c-lab": i + 1}}
        if path.startswith("/v1/environments/"):
            return (200, env) if path.endswith(env["name"]) else (404, {"error": "no such"})
        if path.startswith("/v1/environments"):
            return 200, {"environments": [env]}
        return 404, {"error": "no such path"}

    def _serve(self, i, host, port):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with fake.cv:
                    fake.in_flight += 1
                    fake.overlap = max(fake.overlap, fake.in_flight)
                    fake.cv.notify_all()
                    if fake.gather:
                        fake.cv.wait_for(lambda: fake.in_flight >= fake.n, timeout=1.5)
                status, body = fake._answer(i, self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with fake.cv:
                    fake.in_flight -= 1

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer((host, port), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    def urls(self):
        return [f"http://{s.server_address[0]}:{s.server_address[1]}" for s in self.servers]

    def take_overlap(self):
        with self.cv:
            o, self.overlap = self.overlap, 0
            return o

    def stop(self):
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


class ClusterState(unittest.TestCase):
    def start(self, tmp, state, node_posts=("http://127.0.0.1:1",), extra=()):
        """Starts a cluster post on tmp/state holding `state` (bytes); returns
        (port, process, log path) once it answers."""
        os.makedirs(os.path.join(tmp, "state"), exist_ok=True)
        with open(os.path.join(tmp, "state", "cluster.json"), "wb") as f:
            f.write(state)
        with open(os.path.join(tmp, "labs.yaml"), "w") as f:
            f.write(LABS)
        port, log = free_port(), os.path.join(tmp, "cluster.log")
        with open(log, "w") as out:
            p = subprocess.Popen([OUTPOST, "post", "--tier", "cluster", "--listen",
                                  f"127.0.0.1:{port}", "--config", os.path.join(tmp, "labs.yaml"),
                                  *[a for u in node_posts for a in ("--node-post", u)],
                                  *extra, "--admin-token", ADMIN,
                                  "--state-dir", os.path.join(tmp, "state"),
                                  "--no-register-triggers"], stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(stop_process, p)

        def up():
            self.assertIsNone(p.poll(), open(log).read())
            return request(port, "GET", "/healthz")[0] != 0
        wait_for("the cluster post answering", up, timeout=20, step=0.1)
        return port, p, log

    def test_full_quarantine_comes_back(self):
        names = [f"t{i:04d}-" + "q" * 57 for i in range(1024)]
        self.assertTrue(all(len(n) == 63 for n in names))
        text = json.dumps({"quarantined": names}).encode()
        self.assertGreater(len(text), 65536)
        with tempfile.TemporaryDirectory() as tmp:
            port, _, _ = self.start(tmp, text)
            st, j, _ = request(port, "GET", "/v1/quarantine", token=ADMIN)
            self.assertEqual(st, 200, j)
            self.assertEqual(j["quarantined"], names)

    def test_unreadable_file_is_said(self):
        with tempfile.TemporaryDirectory() as tmp:
            port, p, log = self.start(tmp, b'{"quarantined": ["bob", ')
            st, j, _ = request(port, "GET", "/v1/quarantine", token=ADMIN)
            self.assertEqual(st, 200, j)
            self.assertEqual(j["quarantined"], [])
            self.assertIn("cluster.json: unreadable", open(log).read())
        with tempfile.TemporaryDirectory() as tmp:
            port, p, log = self.start(tmp, b'{"tenants": ["bob"]}')
            self.assertEqual(request(port, "GET", "/v1/quarantine", token=ADMIN)[1]["quarantined"], [])
            self.assertIn('no "quarantined" list', open(log).read())


    def test_node_posts_asked_side_by_side(self):
        fakes = FakeNodePosts(2)
        self.addCleanup(fakes.stop)
        with tempfile.TemporaryDirectory() as tmp:
            port, _, _ = self.start(tmp, b'{"quarantined": []}', fakes.urls())
            fakes.take_overlap()  # whatever start-up asked
            st, j, _ = request(port, "GET", "/v1/labs", token=ADMIN)
            self.assertEqual((st, j["unavailable_nodes"]), (200, 0), j)
            self.assertEqual([t["warm"] for t in j["templates"]], [1 + 2], j)
            self.assertEqual(fakes.take_overlap(), 2, "capacity: both node posts asked at once")
            st, j, _ = request(port, "GET", "/v1/labs/c-lab/environments", token=ADMIN)
            self.assertEqual(st, 200, j)
            self.assertEqual(sorted(e["name"] for e in j["environments"]),
                             ["c-lab-node0", "c-lab-node1"], j)
            self.assertEqual(fakes.take_overlap(), 2, "the list: both node posts asked at once")
            st, j, _ = request(port, "GET", "/v1/labs/c-lab/environments/c-lab-node1", token=ADMIN)
            self.assertEqual((st, j.get("node")), (200, "node1"), j)
            self.assertEqual(fakes.take_overlap(), 2, "a lookup: both node posts asked at once")

    def test_discovered_node_posts_replaced(self):
        name = f"outpost-nodes-{secrets.token_hex(4)}.test"
        port = free_port()
        fakes = FakeNodePosts(3, ["127.0.0.2", "127.0.0.3", "127.0.0.4"], port, gather=False)
        self.addCleanup(fakes.stop)
        with open("/etc/hosts") as f:
            hosts = f.read()

        def resolve_to(*addrs):
            with open("/etc/hosts", "w") as f:
                f.write(hosts.rstrip("\n") + "\n" + "".join(f"{a} {name}\n" for a in addrs))

        def restore():
            with open("/etc/hosts", "w") as f:
                f.write(hosts)
        self.addCleanup(restore)
        resolve_to("127.0.0.2", "127.0.0.3")

        def warm(want):
            st, j, _ = request(port_c, "GET", "/v1/labs", token=ADMIN)
            return st == 200 and j["templates"][0]["warm"] == want and not j["unavailable_nodes"]

        with tempfile.TemporaryDirectory() as tmp:
            port_c, _, log = self.start(tmp, b'{"quarantined": []}', (), (
                "--node-post-service", f"{name}:{port}", "--node-post-forget", "1"))
            wait_for("both node posts' warm environments (1 + 2)", lambda: warm(3), 5)
            resolve_to("127.0.0.2")  # .3 goes (its pod replaced)
            wait_for(".3 said gone", lambda: f"node post http://127.0.0.3:{port} is gone"
                     in open(log).read(), 25, 0.2)
            wait_for("the remaining node post's warm environment (1)", lambda: warm(1), 5)
            resolve_to("127.0.0.2", "127.0.0.4")  # its replacement, at a new address
            wait_for(".4 in .3's place", lambda: f"node post found at http://127.0.0.4:{port} "
                     f"(in the place of http://127.0.0.3:{port}" in open(log).read(), 25, 0.2)
            wait_for("both node posts' warm environments (1 + 3)", lambda: warm(4), 5)

if __name__ == "__main__":
    OUTPOST = sys.argv.pop(1)
    unittest.main(verbosity=2)
