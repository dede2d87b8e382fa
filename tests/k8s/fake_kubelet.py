"""A FAKE kubelet, for the exec tests: it serves the one kubelet endpoint
that the API server proxies pods/exec to, and nothing else.

No kubelet can run where the tests run, but kube-apiserver does not need one
to be real: for `GET /api/v1/namespaces/NS/pods/POD/exec?...` upgraded to a
WebSocket it looks up the Node named in the pod's spec.nodeName, connects to
https://<its InternalIP>:<status.daemonEndpoints.kubeletEndpoint.Port> with
its kubelet client certificate (scripts/kube_up.sh), sends
`GET /exec/NS/POD/CONTAINER?command=...&output=1&error=1` with the client's
upgrade headers, and from then on copies bytes both ways. This fake answers
that request as a kubelet does with the subprotocol v4.channel.k8s.io: an
empty message on channel 1 once connected, the command's stdout and stderr on
channels 1 and 2 as they come, then a metav1.Status on channel 3 (Success;
Failure with reason NonZeroExitCode and the code; or, when the command cannot
be started, an InternalError as a container runtime reports it), then a
close frame.

The command really runs, here, on this host, with subprocess: there is no
container. It is killed when the client goes away.

How the fake behaves is chosen by the pod's name, so that a test can ask for
what no real kubelet does on demand:
    ...frag...      every message is sent in fragments of at most 3 bytes,
                    with a ping (random payload) between fragments; the
                    client's pongs must echo each ping, else the command's
                    result is replaced by exit code 99 and a complaint on
                    stderr
    ...jumbo...     output is sent in messages of at least 100000 bytes (64-bit
                    frame lengths) when there is that much
    ...nostatus...  the connection is closed after the output with no Status
    ...badaccept... the 101 answer carries a wrong Sec-WebSocket-Accept, as
                    if it answered another handshake

Usage: python3 fake_kubelet.py KUBE_DIR
Serves TLS on 127.0.0.1 with KUBE_DIR/pki/fake-kubelet.{crt,key}, requires a
client certificate signed by KUBE_DIR/pki/ca.crt (the API server's), prints
"port N" on stdout once listening, and runs until stdin closes (the test
process that started it ends) or it is signalled. One line per exec goes to
stderr.
"""

import base64
import hashlib
import json
import os
import select
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOL = "v4.channel.k8s.io"
OP_CONT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 2, 8, 9, 10


def log(msg):
    print(f"fake kubelet: {msg}", file=sys.stderr, flush=True)


def frame(op, payload, fin=True):
    """A server frame: never masked."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        head = bytes([b0, n])
    elif n < 65536:
        head = bytes([b0, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 127]) + n.to_bytes(8, "big")
    return head + payload


class ClientFrames:
    """Reads the client's frames, which RFC 6455 requires to be masked."""

    def __init__(self):
        self.buf = b""
        self.errors = []

    def feed(self, data):
        """Yields (op, payload) of each whole frame in what came so far."""
        self.buf += data
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            if not b1 & 0x80:
                self.errors.append("an unmasked client frame")
                mask, end = None, at + n
            else:
                mask, end = self.buf[at:at + 4], at + 4 + n
            if len(self.buf) < end:
                return
            payload = self.buf[end - n:end]
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            self.buf = self.buf[end:]
            yield b0 & 0x0F, payload


def status_success():
    return {"metadata": {}, "status": "Success"}


def status_exit(code):
    # What the kubelet writes (pkg/kubelet/cri/streaming/remotecommand).
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def status_internal(err):
    msg = f"error executing command in container: {err}"
    return {"metadata": {}, "status": "Failure", "message": "Internal error occurred: " + msg,
            "reason": "InternalError", "details": {"causes": [{"message": msg}]}, "code": 500}


class Exec:
    """One exec: a WebSocket on sock, the command in cmd, modes from pod."""

    def __init__(self, sock, pod, cmd):
        self.sock, self.pod, self.cmd = sock, pod, cmd
        self.frag = "frag" in pod
        self.jumbo = "jumbo" in pod
        self.nostatus = "nostatus" in pod
        self.frames = ClientFrames()
        self.pings, self.pongs = [], []
        self.client_gone = False
        self.pending = {1: b"", 2: b""}

    def send_message(self, channel, data):
        msg = bytes([channel]) + data
        if not self.frag:
            self.sock.sendall(frame(OP_BINARY, msg))
            return
        pieces = [msg[i:i + 3] for i in range(0, len(msg), 3)] or [b""]
        for i, piece in enumerate(pieces):
            op = OP_BINARY if i == 0 else OP_CONT
            self.sock.sendall(frame(op, piece, fin=i == len(pieces) - 1))
            if i < len(pieces) - 1:
                ping = os.urandom(4)
                self.pings.append(ping)
                self.sock.sendall(frame(OP_PING, ping))

    def output(self, channel, data, last=False):
        if not self.jumbo:
            if data:
                self.send_message(channel, data)
            return
        self.pending[channel] += data
        if len(self.pending[channel]) >= 100000 or (last and self.pending[channel]):
            self.send_message(channel, self.pending[channel])
            self.pending[channel] = b""

    def read_client(self):
        """Handles what the client sent; False once it has gone."""
        try:
            data = self.sock.recv(65536)
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            self.client_gone = True
            return False
        for op, payload in self.frames.feed(data):
            if op == OP_PONG:
                self.pongs.append(payload)
            elif op == OP_CLOSE:
                self.client_gone = True
                try:
                    self.sock.sendall(frame(OP_CLOSE, payload[:2]))
                except OSError:
                    pass
                return False
        return True

    def run(self):
        try:
            proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            # As runc says it through the container runtime.
            what = "executable file not found in $PATH" if isinstance(e, FileNotFoundError) \
                else e.strerror.lower()
            return status_internal(f'OCI runtime exec failed: exec failed: exec: "{self.cmd[0]}": '
                                   f'{what}: unknown')
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, 1)
        sel.register(proc.stderr, selectors.EVENT_READ, 2)
        sel.register(self.sock, selectors.EVENT_READ, 0)
        open_pipes = 2
        try:
            while open_pipes and not self.client_gone:
                if self.sock.pending():  # TLS bytes already read, which select cannot see
                    self.read_client()
                    continue
                for key, _ in sel.select(timeout=0.2):
                    channel = key.data
                    if channel == 0:
                        self.read_client()
                        continue
                    data = os.read(key.fileobj.fileno(), 65536)
                    self.output(channel, data, last=not data)
                    if not data:
                        sel.unregister(key.fileobj)
                        open_pipes -= 1
        finally:
            if self.client_gone:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            code = proc.wait()
        if self.client_gone:
            return None
        return self.result(code)

    def result(self, code):
        # The client answers pings while it reads: wait for the last pongs.
        until = time.monotonic() + 2
        while len(self.pongs) < len(self.pings) and time.monotonic() < until:
            if self.sock.pending() or select.select([self.sock], [], [], 0.1)[0]:
                if not self.read_client():
                    return None
        if self.pings and self.pongs != self.pings:
            self.send_message(2, f"fake kubelet: {len(self.pings)} pings, "
                                 f"{len(self.pongs)} pongs, not the same\n".encode())
            return status_exit(99)
        if self.frames.errors:
            self.send_message(2, f"fake kubelet: {self.frames.errors[0]}\n".encode())
            return status_exit(98)
        if code < 0:
            code = 128 - code  # killed by a signal, as a shell reports it
        return status_success() if code == 0 else status_exit(code)

    def finish(self, status):
        if status is None or self.client_gone:
            return
        if not self.nostatus:
            self.send_message(3, json.dumps(status).encode())
        self.sock.sendall(frame(OP_CLOSE, (1000).to_bytes(2, "big")))
        # The client answers the close; then the connection ends.
        self.sock.settimeout(2)
        try:
            while self.read_client():
                pass
        except OSError:
            pass


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(4096)
        if not more:
            return None, b""
        data += more
        if len(data) > 65536:
            return None, b""
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def answer(sock, status, text):
    body = text.encode()
    sock.sendall(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}"
                 f"\r\n\r\n".encode() + body)


def serve(sock):
    head, _ = read_head(sock)
    if head is None:
        return
    lines = head.split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    url = urllib.parse.urlsplit(target)
    parts = url.path.split("/")
    if method != "GET" or len(parts) != 5 or parts[1] != "exec":
        answer(sock, "404 Not Found", "the fake kubelet serves /exec/NS/POD/CONTAINER only")
        return
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    cmd = query.get("command", [])
    protocols = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    if headers.get("upgrade", "").lower() != "websocket" or PROTOCOL not in protocols or not cmd:
        answer(sock, "400 Bad Request", f"want a websocket upgrade to {PROTOCOL} and a command")
        return
    key = headers["sec-websocket-key"] + ("x" if "badaccept" in parts[3] else "")
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                  f"Sec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n").encode())
    ex = Exec(sock, parts[3], cmd)
    ex.send_message(1, b"")  # "connected", as the kubelet says it
    log(f"exec in {parts[2]}/{parts[3]}/{parts[4]}: {cmd}")
    ex.finish(ex.run())


def handle(raw, ctx):
    try:
        with ctx.wrap_socket(raw, server_side=True) as sock:
            serve(sock)
    except (OSError, ssl.SSLError, ValueError) as e:
        log(f"connection: {e}")


def main():
    if len(sys.argv) != 2:
        print("usage: fake_kubelet.py KUBE_DIR", file=sys.stderr)
        return 2
    pki = os.path.join(sys.argv[1], "pki")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(pki, "fake-kubelet.crt"), os.path.join(pki, "fake-kubelet.key"))
    ctx.load_verify_locations(os.path.join(pki, "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED  # only the API server may exec
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(f"port {srv.getsockname()[1]}", flush=True)

    def accept_loop():
        while True:
            raw, _ = srv.accept()
            threading.Thread(target=handle, args=(raw, ctx), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    sys.stdin.read()  # until the test that started us ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
