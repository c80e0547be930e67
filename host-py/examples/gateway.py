"""A device gateway on Python's ``ssl`` module that admits devices with
attest's policy component.

    python examples/gateway.py --cert gateway.pem --key gateway.key \\
        --enrollments enrollments.json [--port 8443] [--host 127.0.0.1]

Python's ``ssl`` cannot accept a client certificate without verifying it,
so OpenSSL is given every enrollment group's CA as a trust anchor (with
partial chains allowed, so a group on an intermediate CA works): a chain
OpenSSL cannot verify at all fails the handshake before attest sees it, and
only chains that reach an enrolled CA get attest's decision and
explanation. Python 3.13's ``SSLSocket.get_unverified_chain()`` hands the
chain the device presented, leaf first, to the component.

OpenSSL has checked the device's CertificateVerify against the leaf key,
but ``ssl`` does not expose the signed transcript, so the component cannot
check that proof itself; the gateway asks for attest's challenge proof:

    gateway -> device   challenge <base64url 32 random bytes>
    device  -> gateway  signature <base64url signature over challenge_message(CN, challenge)>
    gateway -> device   admitted <registrationId> by <entry>  |  refused <code>: <message>
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
import threading
from typing import Any, Callable

from attest import EnrollmentSet, Policy, common_name
from attest._pem import base64_decode, base64_encode


def describe(d: dict[str, Any]) -> str:
    if d["verdict"] == "accepted":
        return f"admitted {d['registrationId']} by {d['enrollment']['kind']} '{d['enrollment']['id']}'"
    r = d["refusal"]
    where = f" (chain position {r['certificate']['position']} '{r['certificate']['subject']}')" if r["certificate"] else ""
    return f"refused {r['code']}: {r['message']}{where}"


class Gateway:
    """A TLS gateway; ``serve_forever()`` accepts devices one thread each."""

    def __init__(self, cert: str, key: str, enrollments: str, host: str = "127.0.0.1", port: int = 8443,
                 on_decision: Callable[[dict[str, Any]], None] = lambda d: None) -> None:
        self.policy = Policy()
        self.enrollments = EnrollmentSet.from_json(enrollments, self.policy)
        self.on_decision = on_decision
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        anchors = self.enrollments.anchors()
        if not anchors:
            raise ValueError("the enrollment set has no enrollment group: no CA to trust")
        ctx.load_verify_locations(cadata=b"".join(anchors))
        self.context = ctx
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                chain = tls.get_unverified_chain() or []
                if not chain:
                    tls.sendall(b"refused no-certificate: present a device certificate\n")
                    return
                leaf, intermediates = bytes(chain[0]), [bytes(c) for c in chain[1:]]
                cn = common_name(leaf)
                registration_id = cn if isinstance(cn, str) else "unreadable-leaf"
                challenge = os.urandom(32)
                tls.sendall(f"challenge {base64_encode(challenge)}\n".encode())
                line = tls.makefile("rb").readline(4096).decode("utf-8", "replace").split()
                signature = base64_decode(line[1]) if len(line) == 2 and line[0] == "signature" else None
                if signature is None:
                    tls.sendall(b'refused invalid-proof: expected "signature <base64url>"\n')
                    return
                decision = self.policy.attest(registration_id, leaf, intermediates, self.enrollments,
                                              challenge=challenge, signature=signature)
                self.on_decision(decision)
                tls.sendall(f"{describe(decision)}\n".encode())
        except (ssl.SSLError, OSError):
            pass  # a handshake OpenSSL refused, a device that went away

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def main() -> int:
    p = argparse.ArgumentParser(description="A TLS gateway admitting devices with attest's policy component")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--enrollments", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    a = p.parse_args()
    if sys.version_info < (3, 13):
        print("error: the gateway needs Python 3.13 or later (SSLSocket.get_unverified_chain)", file=sys.stderr)
        return 2
    with open(a.enrollments, encoding="utf-8") as f:
        gw = Gateway(a.cert, a.key, f.read(), a.host, a.port, on_decision=lambda d: print(describe(d), flush=True))
    print(f"gateway listening on {a.host}:{gw.port}", flush=True)
    gw.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
