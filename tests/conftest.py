"""Test-wide set-up: offline by construction, quiet libraries, seeded."""
import ipaddress
import os
import socket

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DFTLAB_PROGRESS", "0")

_original_connect = socket.socket.connect


def _loopback_only_connect(self, address):
    """Fail any network connection that leaves this machine (tests must never need the internet)."""
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            is_local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_local = host == "localhost"
        if not is_local:
            raise ConnectionRefusedError(f"tests are offline: blocked a connection to {address!r}")
    return _original_connect(self, address)


socket.socket.connect = _loopback_only_connect
