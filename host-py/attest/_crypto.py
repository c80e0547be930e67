"""The component's ``attest:policy/crypto`` import, with ``cryptography``.

The component chooses the key, the algorithm and the bytes; this module
maps the allow-listed algorithm onto OpenSSL (through ``cryptography``) and
answers yes or no. Every failure is ``False``, never an exception. The
acceptance rules are the Rust hosts' (aws-lc-rs): RSA moduli of 2048 to
8192 bits with an odd public exponent from 3 to 2**33 - 1, uncompressed EC
points of the algorithm's curve, ASN.1 DER ECDSA signatures, 32-byte
Ed25519 keys.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

_EC = {
    "ecdsa-p256-sha256": (ec.SECP256R1, 32, hashes.SHA256),
    "ecdsa-p256-sha384": (ec.SECP256R1, 32, hashes.SHA384),
    "ecdsa-p256-sha512": (ec.SECP256R1, 32, hashes.SHA512),
    "ecdsa-p384-sha256": (ec.SECP384R1, 48, hashes.SHA256),
    "ecdsa-p384-sha384": (ec.SECP384R1, 48, hashes.SHA384),
    "ecdsa-p384-sha512": (ec.SECP384R1, 48, hashes.SHA512),
    "ecdsa-p521-sha256": (ec.SECP521R1, 66, hashes.SHA256),
    "ecdsa-p521-sha384": (ec.SECP521R1, 66, hashes.SHA384),
    "ecdsa-p521-sha512": (ec.SECP521R1, 66, hashes.SHA512),
}

_RSA = {
    "rsa-pkcs1-sha256": (hashes.SHA256, False),
    "rsa-pkcs1-sha384": (hashes.SHA384, False),
    "rsa-pkcs1-sha512": (hashes.SHA512, False),
    "rsa-pss-sha256": (hashes.SHA256, True),
    "rsa-pss-sha384": (hashes.SHA384, True),
    "rsa-pss-sha512": (hashes.SHA512, True),
}

#: Every algorithm of the WIT ``signature-algorithm`` enum (0.3.0).
ALGORITHMS: tuple[str, ...] = (*_EC, *_RSA, "ed25519")


def _rsa_key(der: bytes) -> rsa.RSAPublicKey | None:
    key = serialization.load_der_public_key(_pkcs1_to_spki(der))
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    numbers = key.public_numbers()
    if not 2048 <= key.key_size <= 8192:
        return None
    if not 3 <= numbers.e <= 2**33 - 1 or numbers.e % 2 == 0:
        return None
    return key


def _pkcs1_to_spki(der: bytes) -> bytes:
    # cryptography loads RSAPublicKey (PKCS#1) only from PEM; wrap the DER
    # into a SubjectPublicKeyInfo (rsaEncryption, NULL parameters).
    def length(n: int) -> bytes:
        if n < 0x80:
            return bytes([n])
        body = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return bytes([0x80 | len(body)]) + body

    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")
    bit_string = b"\x03" + length(len(der) + 1) + b"\x00" + der
    body = algorithm + bit_string
    return b"\x30" + length(len(body)) + body


def verify_signature(algorithm: str, public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is valid over ``message`` under ``public_key``
    (the subjectPublicKey BIT STRING content) with ``algorithm``."""
    try:
        if algorithm in _EC:
            curve, size, hash_ = _EC[algorithm]
            if len(public_key) != 1 + 2 * size or public_key[0] != 0x04:
                return False
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve(), public_key)
            key.verify(signature, message, ec.ECDSA(hash_()))
            return True
        if algorithm in _RSA:
            hash_, pss = _RSA[algorithm]
            rsa_key = _rsa_key(public_key)
            if rsa_key is None:
                return False
            pad = (
                padding.PSS(mgf=padding.MGF1(hash_()), salt_length=hash_.digest_size)
                if pss
                else padding.PKCS1v15()
            )
            rsa_key.verify(signature, message, pad, hash_())
            return True
        if algorithm == "ed25519":
            if len(public_key) != 32 or len(signature) != 64:
                return False
            ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
            return True
        return False
    except (InvalidSignature, ValueError, TypeError, OverflowError):
        return False
    except Exception:  # noqa: BLE001 - any failure of the library is "does not verify"
        return False
