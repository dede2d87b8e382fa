#!/usr/bin/env python3
"""The cluster post's quarantine file (cluster.json in --state-dir) read back
at start-up, without podman: the cluster post runs alone (its node post
address answers nothing, no triggers registered). A full set (1024 tenants
with 63-byte names: more than the 64 KiB an earlier reader took) comes back
whole; a file that is not the quarantine is said in the log, and the post
starts with no tenant quarantined.

Usage: test_cluster_state.py /path/to/outpost
"""
import json
import os
import subprocess
import sys
import tempfile
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


class ClusterState(unittest.TestCase):
    def start(self, tmp, state):
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
                                  "--node-post", "http://127.0.0.1:1", "--admin-token", ADMIN,
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


if __name__ == "__main__":
    OUTPOST = sys.argv.pop(1)
    unittest.main(verbosity=2)
