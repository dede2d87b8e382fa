"""Helpers shared by the Python integration tests (and nothing else).

A test finds this module with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
"""
import http.client
import http.server
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse


_HANDED_OUT = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that
    this process has not been given before: the kernel may hand the port it
    just gave back again, and a test that asks for several ports before
    starting anything on them would then start two servers on one (seen:
    test_tiers' cluster post answering at its ns post's port, which the ns
    post never got)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def binary_headers(i, **extra):
    """The headers of a binary-mode CloudEvent with id i (and extra headers)."""
    h = {"ce-specversion": "1.0", "ce-id": str(i), "ce-source": "/test",
         "ce-type": "dev.outpost.test", "Content-Type": "application/json"}
    h.update(extra)
    return h


def request(port, method, path, body=None, token=None, headers=None, timeout=30):
    """(status, body, headers) of one request to 127.0.0.1:port on a fresh
    connection; (0, None, {}) when nothing answers. A dict or list body is
    sent as JSON; the answer's body is parsed JSON, text where it is not
    JSON (/metrics), None when empty."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
    except OSError:
        return 0, None, {}
    try:
        j = json.loads(data) if data else None
    except ValueError:
        j = data.decode(errors="replace")
    return r.status, j, dict(r.getheaders())


def health_pid(port):
    """The pid a component's /healthz names, None when it does not answer."""
    st, j, _ = request(port, "GET", "/healthz", timeout=2)
    return j.get("pid") if st == 200 and isinstance(j, dict) else None


def wait_for(what, fn, timeout=30, step=0.05):
    """Polls fn until it returns something true, and returns that value;
    AssertionError naming `what` once fn has come out false after timeout
    seconds (so fn is always called at least once, and once more at the end)."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out ({timeout} s) waiting for {what}")
        time.sleep(step)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(port, handler):
    """A threaded HTTP server of handler (a BaseHTTPRequestHandler class) on
    127.0.0.1:port, serving from a daemon thread; stop it with shutdown() and
    server_close()."""
    server = _Server(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Subscriber:
    """An HTTP subscriber on 127.0.0.1 that keeps every CloudEvent delivered
    to it (binary mode, as the dispatcher delivers: its ce- headers,
    percent-decoded, "datacontenttype" from Content-Type, and "data", the
    body's bytes) and answers 200."""

    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.events = []
        sub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ev = {k[3:].lower(): urllib.parse.unquote(v) for k, v in self.headers.items()
                      if k.lower().startswith("ce-")}
                ev["datacontenttype"] = self.headers.get("Content-Type")
                ev["data"] = body
                with sub.lock:
                    sub.events.append(ev)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = serve(self.port, Handler)

    def got(self, pred=lambda ev: True):
        """The events kept so far that pred accepts."""
        with self.lock:
            return [ev for ev in self.events if pred(ev)]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def make_ca(d):
    """A test CA in directory d (ca.crt, ca.key), made with openssl, valid
    two days."""
    _openssl("req", "-x509", *_EC, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", "-days", "2",
             "-subj", "/CN=outpost test CA")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")


def server_cert(d, name):
    """d/name.crt and d/name.key: a P-256 certificate for 127.0.0.1 that the
    CA of make_ca(d) signed."""
    _openssl("req", *_EC, "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj",
             "/CN=127.0.0.1")
    _openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.crt", "-CAkey",
             f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/{name}.crt", "-days", "2",
             "-extfile", f"{d}/ext")


def cgroup2_root():
    """The cgroup2 mount point, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup2 " in line:
                return line.split()[4]
    return None


def ebpf_skip_reason():
    """Why the eBPF side cannot run here (root, BTF, a cgroup2 mount), or None."""
    if os.geteuid() != 0:
        return "needs root (eBPF)"
    if not os.access("/sys/kernel/btf/vmlinux", os.R_OK):
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    if not cgroup2_root():
        return "no cgroup2 mount"
    return None


def alive(pid):
    """Whether pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def stop_process(p, timeout=10):
    """SIGTERM to a subprocess.Popen, then SIGKILL if it is not gone in
    timeout seconds; waits for it either way."""
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def unpack_headers(blob):
    """The log's header blob: u32 name length, name, u32 value length, value."""
    out, i = {}, 0
    while i < len(blob):
        (n,) = struct.unpack_from("<I", blob, i)
        name = blob[i + 4:i + 4 + n].decode()
        i += 4 + n
        (m,) = struct.unpack_from("<I", blob, i)
        out[name] = blob[i + 4:i + 4 + m].decode()
        i += 4 + m
    return out


def metric_samples(text):
    """The samples of Prometheus text, each as (name, labels as rendered
    or "", value); a line it cannot read fails the test."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m:
            raise AssertionError(f"bad metrics line {line!r}")
        yield m.group(1), m.group(2) or "", float(m.group(3))


def parse_metrics(text):
    """Prometheus text as {"name{labels}": value}."""
    return {name + (f"{{{labels}}}" if labels else ""): value
            for name, labels, value in metric_samples(text)}
