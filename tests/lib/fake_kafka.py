"""FakeKafkaBroker: the frame of a FAKE Kafka broker for tests that need what
librdkafka's mock cluster does not do (authenticate, create topics with
configs). It listens on 127.0.0.1, reads each connection's requests, answers
ApiVersions with the versions a subclass lists in APIS (none of them
flexible), and gives every other request to the subclass's handle(). Nothing
else of Kafka is spoken: a test names the fake it uses and says why.
"""
import socket
import struct
import threading


class FakeKafkaBroker:
    """A FAKE Kafka broker. Subclasses set APIS, [(api key, min, max)], and
    define handle(key, version, body): the response body after the
    correlation id, or None to close the connection."""

    APIS = []

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def api_versions(self, ver):
        """ApiVersions: a flexible version (> 2) gets error 35 and the list
        (KIP-511), and the client asks again with v0."""
        apis = struct.pack(">i", len(self.APIS)) + b"".join(struct.pack(">hhh", *a)
                                                            for a in self.APIS)
        if ver > 2:
            return struct.pack(">h", 35) + apis
        return struct.pack(">h", 0) + apis + (struct.pack(">i", 0) if ver >= 1 else b"")

    def serve(self, c):
        def frame():
            head = c.recv(4, socket.MSG_WAITALL)
            if len(head) < 4:
                raise EOFError
            n = struct.unpack(">i", head)[0]
            return c.recv(n, socket.MSG_WAITALL)

        c.settimeout(20)
        try:
            while True:
                req = frame()
                key, ver, corr = struct.unpack(">hhi", req[:8])
                client_len = struct.unpack(">h", req[8:10])[0]
                body = req[10 + max(client_len, 0):]
                answer = self.api_versions(ver) if key == 18 else self.handle(key, ver, body)
                if answer is None:
                    return
                c.sendall(struct.pack(">ii", len(answer) + 4, corr) + answer)
        except (OSError, EOFError, struct.error, ValueError):
            pass
        finally:
            c.close()

    def handle(self, key, ver, body):
        return None

    def close(self):
        self.sock.close()
