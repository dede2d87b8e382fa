"""Helpers shared by the broker's Python integration tests."""
import socket


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def binary_headers(i, **extra):
    """The headers of a binary-mode CloudEvent with id i (and extra headers)."""
    h = {"ce-specversion": "1.0", "ce-id": str(i), "ce-source": "/test",
         "ce-type": "dev.outpost.test", "Content-Type": "application/json"}
    h.update(extra)
    return h
