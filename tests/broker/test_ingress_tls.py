#!/usr/bin/env python3
"""`outpost broker --tls-cert FILE --tls-key FILE`: the ingress over HTTPS,
on 127.0.0.1, with a CA and certificates the test makes with openssl.

  - binary, structured and batched events POSTed over TLS (1.2 and 1.3)
    get 202 and reach a subscriber through a trigger as they were sent;
    keep-alive holds; a bad event gets 400 naming the attribute;
  - a client that does not trust the CA refuses the server; plain HTTP to
    the port gets 400 with a JSON error, counted, as nginx answers it;
    bytes that are neither get no answer, the broker serves on, and what
    libmicrohttpd says of such clients is bounded in the log;
  - `outpost detector` publishes to the HTTPS ingress with OUTPOST_CA_FILE,
    and without it keeps its event and says why (the certificate);
  - a post (the cluster post) registers its triggers at the HTTPS admin
    API with OUTPOST_CA_FILE, and without it says why (libcurl's text, not
    errno's "Protocol error") and registers none;
  - a renewed certificate, swapped in as the kubelet updates a mounted
    Secret (a `..data` symlink replaced), is served to new connections
    within seconds, without a restart, and a connection made before goes
    on; a swap to a certificate with another's key is refused and the one
    before is still served; both counted and said;
  - the flags: one without the other, a missing file, --fast-lane, a file
    that is not PEM, a certificate with another's key.

Usage: test_ingress_tls.py /path/to/outpost
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import Subscriber, free_port, make_ca, server_cert, wait_for  # noqa: E402

OUTPOST = None
DIR = None
EVENT = {"ce-specversion": "1.0", "ce-source": "/tls/test", "ce-type": "dev.test.tls",
         "Content-Type": "text/plain"}


def make_pki(d):
    """A CA, a server certificate it signed for 127.0.0.1 (srv), and a second,
    self-signed certificate whose key does not match the first (other)."""
    make_ca(d)
    server_cert(d, "srv")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/other.key", "-out",
                    f"{d}/other.crt", "-days", "2", "-subj", "/CN=other"],
                   check=True, capture_output=True)


def secret_swap(d, crt, key):
    """The files of a mounted Secret as the kubelet writes them: tls.crt and
    tls.key are symlinks through ..data, a symlink to a directory of this
    version, replaced in one rename."""
    gen = f"{d}/..gen{time.monotonic_ns()}"
    os.mkdir(gen)
    shutil.copy(crt, f"{gen}/tls.crt")
    shutil.copy(key, f"{gen}/tls.key")
    os.symlink(os.path.basename(gen), f"{d}/..data_tmp")
    os.rename(f"{d}/..data_tmp", f"{d}/..data")
    for f in ("tls.crt", "tls.key"):
        if not os.path.islink(f"{d}/{f}"):
            os.symlink(f"..data/{f}", f"{d}/{f}")


def der(pem_file):
    with open(pem_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def context(version=None, trust=True):
    ctx = ssl.create_default_context(cafile=f"{DIR}/ca.crt" if trust else None)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


class TlsBroker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sub = Subscriber()
        cls.port = free_port()
        with open(f"{DIR}/broker.yaml", "w") as f:
            f.write(f"""\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: to-test}}
spec:
  broker: default
  subscriber: {{uri: "http://127.0.0.1:{cls.sub.port}/"}}
""")
        cls.err = open(f"{DIR}/broker.stderr", "w+")
        cls.secret = f"{DIR}/secret"
        os.mkdir(cls.secret)
        secret_swap(cls.secret, f"{DIR}/srv.crt", f"{DIR}/srv.key")
        cls.broker = subprocess.Popen(
            [OUTPOST, "broker", "--listen", f"127.0.0.1:{cls.port}", "--data", f"{DIR}/b.db",
             "--config", f"{DIR}/broker.yaml", "--tls-cert", f"{cls.secret}/tls.crt",
             "--tls-key", f"{cls.secret}/tls.key"], stdout=subprocess.PIPE, stderr=cls.err,
            text=True)
        lines = []
        for line in cls.broker.stdout:
            lines.append(line)
            if line.startswith("listening on"):
                break
        assert lines and lines[-1].startswith(f"listening on https://127.0.0.1:{cls.port}"), lines
        assert f"POST https://127.0.0.1:{cls.port}/default/default" in "".join(lines), lines

    @classmethod
    def tearDownClass(cls):
        cls.broker.send_signal(signal.SIGTERM)
        rc = cls.broker.wait(timeout=60)
        cls.broker.stdout.close()
        cls.sub.stop()
        cls.err.close()
        assert rc == 0, f"the broker exited {rc}"

    def conn(self, **kw):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=context(**kw),
                                           timeout=10)

    def post(self, c, body, headers):
        c.request("POST", "/default/default", body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()

    def post_once(self, body, headers):
        c = self.conn()
        try:
            return self.post(c, body, headers)
        finally:
            c.close()

    def received(self, source):
        return self.sub.got(lambda e: e.get("source") == source)

    def test_modes_over_tls(self):
        """Binary, structured and a batch: 202, and delivered as sent."""
        src = "/tls/modes"
        c = self.conn()
        st, _ = self.post(c, b"binary data", {**EVENT, "ce-id": "b1", "ce-source": src})
        self.assertEqual(st, 202)
        ev = {"specversion": "1.0", "id": "s1", "source": src, "type": "dev.test.tls",
              "datacontenttype": "application/json", "data": {"n": 1}}
        st, _ = self.post(c, json.dumps(ev), {"Content-Type": "application/cloudevents+json"})
        self.assertEqual(st, 202)
        batch = [{**ev, "id": "m1"}, {**ev, "id": "m2"}]
        st, _ = self.post(c, json.dumps(batch),
                          {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(st, 202)
        c.close()
        got = wait_for("the four events at the subscriber",
                       lambda: len(self.received(src)) == 4 and self.received(src))
        by_id = {e["id"]: e for e in got}
        self.assertEqual(set(by_id), {"b1", "s1", "m1", "m2"})
        self.assertEqual(by_id["b1"]["data"], b"binary data")
        self.assertEqual(json.loads(by_id["m2"]["data"]), {"n": 1})

    def test_keep_alive_and_versions(self):
        """One TLS connection for many requests, on TLS 1.2 and on 1.3."""
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            c = self.conn(version=version)
            c.connect()
            sock = c.sock
            self.assertEqual(sock.version(), {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                              ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version])
            for i in range(20):
                st, _ = self.post(c, b"x", {**EVENT, "ce-id": f"k{version}-{i}"})
                self.assertEqual(st, 202)
            self.assertIs(c.sock, sock, "the connection was kept")
            c.close()

    def test_bad_event_over_tls(self):
        st, body = self.post_once(b"x", {**EVENT, "ce-specversion": "0.3", "ce-id": "bad"})
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(body)["attribute"], "specversion", body)

    def test_untrusted_client_refuses(self):
        """The certificate served is the one given: a client without its CA
        refuses it."""
        c = self.conn(trust=False)
        with self.assertRaises(ssl.SSLCertVerificationError):
            c.request("GET", "/healthz")
        c.close()

    def get(self, path):
        """The body of GET path, over TLS."""
        c = self.conn()
        try:
            c.request("GET", path)
            return c.getresponse().read()
        finally:
            c.close()

    def test_plain_http_gets_400(self):
        """Plain HTTP to the HTTPS port (http:// for https://): 400 with a
        JSON error that says so, and the connection closed, as nginx does;
        also a request line that comes a few bytes at a time. Counted; the
        broker serves on over TLS."""
        before = self.metric("outpost_ingress_plain_http_on_tls_total")
        for i in range(20):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            if i % 2:
                c.request("GET", "/healthz")
            else:
                c.request("POST", "/default/default", body=b"x",
                          headers={**EVENT, "ce-id": f"plain-{i}", "ce-source": "/tls/plain"})
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 400, body)
            self.assertEqual(r.getheader("Content-Type"), "application/json")
            self.assertIn("plain HTTP", json.loads(body)["error"])
            self.assertEqual(r.getheader("Connection"), "close")
            c.close()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            for part in (b"PO", b"ST", b" /default/default HTTP/1.1\r\nHost: x\r\n\r\n"):
                s.sendall(part)
                time.sleep(0.2)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer)
        self.assertEqual(self.metric("outpost_ingress_plain_http_on_tls_total"),
                         before + 21)
        self.assertEqual(self.post_once(b"x", {**EVENT, "ce-id": "after-plain"})[0], 202)
        self.assertEqual(self.received("/tls/plain"), [], "no plain event was kept")

    def test_garbage_gets_nothing(self):
        """Bytes that are neither TLS nor HTTP: no answer (GnuTLS refuses the
        handshake); the broker goes on serving; libmicrohttpd's complaints
        are at most 5 lines a second."""
        self.err.seek(0, os.SEEK_END)
        start = self.err.tell()
        t0 = time.monotonic()
        for _ in range(40):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(b"\x00\x01 not a handshake\r\n\r\n")
                try:
                    self.assertEqual(s.recv(4096), b"")
                except ConnectionResetError:
                    pass
        took = time.monotonic() - t0
        st, _ = self.post_once(b"x", {**EVENT, "ce-id": "after-garbage"})
        self.assertEqual(st, 202)
        self.err.seek(start)
        lines = [l for l in self.err.read().splitlines() if l.startswith("libmicrohttpd:")]
        self.assertTrue(lines, "libmicrohttpd said nothing of 40 clients")
        self.assertLessEqual(len(lines), 6 * (int(took) + 2), lines)

    def test_post_registers_its_triggers_over_tls(self):
        """A post (the cluster post; no podman needed) registers its triggers
        at the HTTPS broker's admin API with OUTPOST_CA_FILE; without it, it
        says the certificate is the problem and registers none."""
        with open(f"{DIR}/labs.yaml", "w") as f:
            f.write("apiVersion: outpost.dev/v1\nkind: LabTemplate\nmetadata: {name: t-lab}\n"
                    "spec: {image: localhost/outpost-lab-t:latest}\n")
        mine = lambda: [t for t in json.loads(self.get("/v1/triggers"))  # noqa: E731
                        if "cluster" in json.dumps(t.get("metadata", {}))]
        self.assertEqual(mine(), [])
        for trust in (False, True):
            env = {k: v for k, v in os.environ.items() if k != "OUTPOST_CA_FILE"}
            if trust:
                env["OUTPOST_CA_FILE"] = f"{DIR}/ca.crt"
            os.makedirs(f"{DIR}/post-{trust}", exist_ok=True)
            with open(f"{DIR}/post-{trust}.log", "w+") as log:
                post = subprocess.Popen(
                    [OUTPOST, "post", "--tier", "cluster", "--listen",
                     f"127.0.0.1:{free_port()}", "--config", f"{DIR}/labs.yaml", "--node-post",
                     "http://127.0.0.1:1", "--admin-token", "tok-post-admin", "--state-dir",
                     f"{DIR}/post-{trust}", "--broker-url",
                     f"https://127.0.0.1:{self.port}/default/default"],
                    stdout=log, stderr=subprocess.STDOUT, env=env)
                try:
                    if trust:
                        got = wait_for("the cluster post's triggers at the broker", mine)
                        for t in got:
                            self.assertTrue(t["spec"]["subscriber"]["uri"].startswith("http"), t)
                    else:
                        def said():
                            log.seek(0)
                            return "certificate" in log.read().lower()
                        wait_for("the post saying why it cannot register", said)
                        self.assertEqual(mine(), [])
                except AssertionError as e:
                    log.seek(0)
                    raise AssertionError(f"{e}\n--- the post's log:\n{log.read()[-3000:]}") from None
                finally:
                    post.send_signal(signal.SIGTERM)
                    self.assertEqual(post.wait(timeout=30), 0)

    def test_detector_publishes_over_tls(self):
        """OUTPOST_CA_FILE: the detector (core/httpc) trusts the CA; without
        it, it keeps the event and says the certificate is the problem."""
        for trust in (True, False):
            env = dict(os.environ)
            env.pop("OUTPOST_CA_FILE", None)
            if trust:
                env["OUTPOST_CA_FILE"] = f"{DIR}/ca.crt"
            dport = free_port()
            src_tenant = "alice" if trust else "bob"
            with open(f"{DIR}/det-{trust}.stderr", "w+") as err:
                det = subprocess.Popen(
                    [OUTPOST, "detector", "--no-bpf", "--broker-url",
                     f"https://127.0.0.1:{self.port}/default/default", "--listen",
                     f"127.0.0.1:{dport}", "--node", "tls-node", "--tenant-token",
                     f"{src_tenant}=tok-{src_tenant}", "--batch-ms", "5"],
                    stdout=subprocess.DEVNULL, stderr=err, env=env)
                try:
                    def post():
                        c = http.client.HTTPConnection("127.0.0.1", dport, timeout=5)
                        try:
                            c.request("POST", f"/v1/tenants/{src_tenant}/events",
                                      body=json.dumps({"type": "tls-check"}),
                                      headers={"Authorization": f"Bearer tok-{src_tenant}",
                                               "Content-Type": "application/json"})
                            return c.getresponse().status == 202
                        except OSError:
                            return False
                        finally:
                            c.close()
                    wait_for("the detector takes a tenant event", post)
                    arrived = lambda: self.sub.got(  # noqa: E731
                        lambda e: e.get("tenant") == src_tenant)
                    if trust:
                        wait_for("the detector's event at the subscriber", arrived)
                    else:
                        def said():
                            err.seek(0)
                            return "certificate" in err.read().lower()
                        wait_for("the detector saying why it cannot publish", said)
                        time.sleep(1)
                        self.assertEqual(arrived(), [])
                finally:
                    det.send_signal(signal.SIGTERM)
                    det.wait(timeout=30)


    def served(self):
        """The certificate a new connection is given (DER)."""
        c = self.conn()
        c.connect()
        try:
            return c.sock.getpeercert(binary_form=True)
        finally:
            c.close()

    def metric(self, name):
        text = self.get("/metrics").decode()
        return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))

    def test_z_renewed_certificate(self):
        """Last (it changes the broker's certificate): a renewal served without
        a restart; a bad one refused."""
        self.assertEqual(self.served(), der(f"{DIR}/srv.crt"))
        before = self.conn()
        st, _ = self.post(before, b"x", {**EVENT, "ce-id": "before-renewal"})
        self.assertEqual(st, 202)
        server_cert(DIR, "renewed")
        secret_swap(self.secret, f"{DIR}/renewed.crt", f"{DIR}/renewed.key")
        t0 = time.monotonic()
        wait_for("the renewed certificate served",
                 lambda: self.served() == der(f"{DIR}/renewed.crt"), timeout=15, step=0.2)
        print(f"\n  renewed certificate served {time.monotonic() - t0:.1f} s after the swap")
        st, _ = self.post(before, b"x", {**EVENT, "ce-id": "after-renewal"})
        self.assertEqual(st, 202, "a connection made before the renewal goes on")
        before.close()
        self.assertEqual(self.metric('outpost_ingress_tls_reloads_total{result="ok"}'), 1)
        # A certificate with a key that is not its own: refused, the renewed one kept.
        secret_swap(self.secret, f"{DIR}/srv.crt", f"{DIR}/other.key")
        wait_for("the bad pair refused",
                 lambda: self.metric('outpost_ingress_tls_reloads_total{result="failed"}') == 1,
                 timeout=15, step=0.2)
        self.assertEqual(self.served(), der(f"{DIR}/renewed.crt"))
        st, _ = self.post_once(b"x", {**EVENT, "ce-id": "after-bad-swap"})
        self.assertEqual(st, 202)
        self.err.seek(0)
        text = self.err.read()
        self.assertIn("TLS certificate read again from", text)
        self.assertIn("do not match; still serving the certificate read before", text)


class Flags(unittest.TestCase):
    def run_broker(self, *args):
        r = subprocess.run([OUTPOST, "broker", "--listen", f"127.0.0.1:{free_port()}", "--data",
                            f"{DIR}/flags.db", *args], capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr

    def test_refused(self):
        cert, key = f"{DIR}/srv.crt", f"{DIR}/srv.key"
        with open(f"{DIR}/not.pem", "w") as f:
            f.write("not a certificate\n")
        for args, code, says in (
                (["--tls-cert", cert], 2, "--tls-cert and --tls-key go together"),
                (["--tls-key", key], 2, "--tls-cert and --tls-key go together"),
                (["--tls-cert", f"{DIR}/missing.crt", "--tls-key", key], 2,
                 "--tls-cert " + f"{DIR}/missing.crt: No such file"),
                (["--tls-cert", cert, "--tls-key", key, "--fast-lane"], 2,
                 "--fast-lane serves plain HTTP"),
                (["--tls-cert", f"{DIR}/not.pem", "--tls-key", key], 1, "not a PEM file"),
                (["--tls-cert", cert, "--tls-key", f"{DIR}/other.key"], 1,
                 "The certificate and the given key do not match")):
            with self.subTest(args=args):
                rc, err = self.run_broker(*args)
                self.assertEqual(rc, code, err)
                self.assertIn(says, err)


if __name__ == "__main__":
    OUTPOST = sys.argv.pop(1)
    DIR = tempfile.mkdtemp(prefix="outpost-tls-")
    try:
        make_pki(DIR)
        unittest.main(verbosity=2)
    finally:
        shutil.rmtree(DIR, ignore_errors=True)
