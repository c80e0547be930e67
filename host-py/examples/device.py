"""A device for examples/gateway.py: presents its chain over TLS, signs
the gateway's challenge with its key, prints the gateway's answer.

    python examples/device.py --chain device-1.pem --key device-1.key [--port 8443] [--host 127.0.0.1]

Exit codes: 0 admitted, 1 refused, 2 error.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from attest import Policy, common_name, pem_certificates
from attest._pem import base64_decode, base64_encode


def register(chain: str, key: str, host: str = "127.0.0.1", port: int = 8443) -> str:
    with open(chain, encoding="utf-8") as f:
        leaf = pem_certificates(f.read())[0]
    with open(key, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), None)
    registration_id = common_name(leaf)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The gateway's identity is not this example's subject.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(chain, key)
    with socket.create_connection((host, port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        f = tls.makefile("rb")
        word, value = f.readline(4096).decode().split()
        if word != "challenge":
            return f"{word} {value}"
        message = Policy().challenge_message(str(registration_id), base64_decode(value) or b"")
        if isinstance(private, ec.EllipticCurvePrivateKey):
            signature = private.sign(message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(private, rsa.RSAPrivateKey):
            signature = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            signature = private.sign(message)
        else:
            raise ValueError("unsupported device key type")
        tls.sendall(f"signature {base64_encode(signature)}\n".encode())
        return f.readline(4096).decode().strip()


def main() -> int:
    p = argparse.ArgumentParser(description="A device registering with examples/gateway.py")
    p.add_argument("--chain", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    a = p.parse_args()
    try:
        line = register(a.chain, a.key, a.host, a.port)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(line)
    return 0 if line.startswith("admitted") else 1


if __name__ == "__main__":
    sys.exit(main())
