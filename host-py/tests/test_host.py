from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from attest import ALGORITHMS, EnrollmentSet, HostError, Limits, Policy, component_bytes, pem_certificates, to_json, verify_signature
from attest.cli import run

from conftest import host_cli


def test_the_package_ships_the_exact_component_host_cli_embeds(tmp_path: Path) -> None:
    out = tmp_path / "c.wasm"
    subprocess.run([host_cli(), "component", "--out", str(out)], check=True, capture_output=True)
    assert hashlib.sha256(component_bytes()).hexdigest() == hashlib.sha256(out.read_bytes()).hexdigest()


def _key(algorithm: str):
    if algorithm.startswith("ecdsa"):
        curve = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1}[algorithm.split("-")[1]]
        private = ec.generate_private_key(curve())
        raw = private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    elif algorithm.startswith("rsa"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        raw = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, raw


def _sign(algorithm: str, private, message: bytes) -> bytes:
    if algorithm == "ed25519":
        return private.sign(message)
    h = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}[algorithm.split("-")[-1]]
    if algorithm.startswith("ecdsa"):
        return private.sign(message, ec.ECDSA(h()))
    if algorithm.startswith("rsa-pss"):
        return private.sign(message, padding.PSS(mgf=padding.MGF1(h()), salt_length=h.digest_size), h())
    return private.sign(message, padding.PKCS1v15(), h())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_verify_signature_every_wit_algorithm(algorithm: str) -> None:
    assert len(ALGORITHMS) == 16
    private, raw = _key(algorithm)
    sig = _sign(algorithm, private, b"attest")
    assert verify_signature(algorithm, raw, b"attest", sig)
    assert not verify_signature(algorithm, raw, b"attesT", sig)
    assert not verify_signature(algorithm, raw, b"attest", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not verify_signature(algorithm, raw[1:], b"attest", sig)
    assert not verify_signature(algorithm, b"", b"", b"")


def test_curve_and_rsa_size_rules() -> None:
    private, raw = _key("ecdsa-p256-sha384")
    sig = _sign("ecdsa-p256-sha384", private, b"m")
    assert verify_signature("ecdsa-p256-sha384", raw, b"m", sig)
    assert not verify_signature("ecdsa-p384-sha384", raw, b"m", sig)
    off = bytearray(raw)
    off[40] ^= 1
    assert not verify_signature("ecdsa-p256-sha384", bytes(off), b"m", sig)
    assert not verify_signature("dsa-sha1", raw, b"m", sig)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_raw = small.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    assert not verify_signature("rsa-pkcs1-sha256", small_raw, b"m", small.sign(b"m", padding.PKCS1v15(), hashes.SHA256()))


def _decide(policy: Policy, pki: Path, n: int, set_name: str) -> dict:
    chain = pem_certificates((pki / f"device-{n}.pem").read_text())
    enrollments = EnrollmentSet.from_json((pki / set_name).read_text(), policy)
    return policy.resolve(f"device-{n}", chain[0], chain[1:], enrollments)


def test_canonical_scenario_refusals_are_values(policy: Policy, pki: Path) -> None:
    ok = _decide(policy, pki, 1, "enrollments-2-line-b-disabled.json")
    assert ok["verdict"] == "accepted"
    assert ok["enrollment"] == {"kind": "enrollmentGroup", "id": "all-devices"}
    no = _decide(policy, pki, 4, "enrollments-2-line-b-disabled.json")
    assert no["refusal"]["code"] == "enrollment-group-disabled"
    assert no["refusal"]["certificate"]["position"] == 1
    assert no["refusal"]["enrollment"] == {"kind": "enrollmentGroup", "id": "line-b"}
    three = _decide(policy, pki, 3, "enrollments-3-device-3-disabled.json")
    assert three["refusal"]["code"] == "individual-enrollment-disabled"


def test_challenge_proof(policy: Policy, pki: Path) -> None:
    chain = pem_certificates((pki / "device-1.pem").read_text())
    enrollments = EnrollmentSet.from_json((pki / "enrollments-1-root-enabled.json").read_text(), policy)
    challenge = bytes([9]) * 32
    message = policy.challenge_message("device-1", challenge)
    assert isinstance(message, bytes)
    for key_file, verdict in (("device-1.key", "accepted"), ("device-2.key", "refused")):
        key = serialization.load_pem_private_key((pki / key_file).read_bytes(), None)
        sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
        d = policy.attest("device-1", chain[0], chain[1:], enrollments, challenge=challenge, signature=sig)
        assert d["verdict"] == verdict
    assert "code" in policy.challenge_message("device-1", b"abc")


def test_a_failing_lookup_fails_the_call_and_never_falls_through(policy: Policy, pki: Path) -> None:
    chain = pem_certificates((pki / "device-3.pem").read_text())
    real = EnrollmentSet.from_json((pki / "enrollments-3-device-3-disabled.json").read_text(), policy)

    class Broken:
        def individual(self, registration_id):
            raise RuntimeError("database down")

        def group(self, ca):
            return real.group(ca)

        def trust_anchors(self, key):
            return real.trust_anchors(key)

    with pytest.raises(HostError, match="database down"):
        policy.resolve("device-3", chain[0], chain[1:], Broken())
    assert policy.resolve("device-3", chain[0], chain[1:], real)["refusal"]["code"] == "individual-enrollment-disabled"


def test_fuel_and_memory_caps_are_host_errors(pki: Path) -> None:
    chain = pem_certificates((pki / "device-1.pem").read_text())
    roots = pem_certificates((pki / "root-ca.pem").read_text())
    with pytest.raises(HostError, match="fuel"):
        Policy(Limits(fuel=10_000)).validate_chain(chain[0], chain[1:], roots)
    with pytest.raises(HostError):
        Policy(Limits(memory_bytes=64 * 1024)).validate_chain(chain[0], chain[1:], roots)
    assert Policy(Limits(fuel=500_000_000)).validate_chain(chain[0], chain[1:], roots)["verdict"] == "accepted"


def test_bad_arguments_and_bad_certificates(policy: Policy) -> None:
    with pytest.raises(TypeError):
        policy.validate_chain("not bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        policy.validate_chain(b"\x30", purpose="email")
    d = policy.validate_chain(b"\x01\x02", [], [], time=0)
    assert d["refusal"]["code"] == "malformed-certificate"
    assert d["validationTime"] == "1970-01-01T00:00:00Z"


def test_cli_exit_codes_and_one_line_errors(policy: Policy, pki: Path, tmp_path: Path) -> None:
    code, out, _ = run(["verify", str(pki / "device-1.pem"), "--enrollments", str(pki / "enrollments-3-device-3-disabled.json")], policy)
    assert code == 0 and out.startswith("ACCEPTED  device-1 is admitted by enrollment group 'all-devices'")
    code, out, _ = run(["verify", str(pki / "device-3.pem"), "--enrollments", str(pki / "enrollments-3-device-3-disabled.json"), "--json"], policy)
    assert code == 1 and json.loads(out)["refusal"]["code"] == "individual-enrollment-disabled"
    (tmp_path / "empty.pem").write_text("  \n")
    (tmp_path / "bad.json").write_text('{"enrollmentGroups": 3}')
    cases = [
        (["verify"], "required"),
        (["verify", "x.pem", "--eku", "email"], "invalid value 'email'"),
        (["verify", "x.pem", "--challenge", "AA"], "--signature"),
        (["verify", str(tmp_path / "missing.pem"), "--trust", "x"], "No such file or directory (os error 2)"),
        (["verify", str(tmp_path / "empty.pem"), "--trust", "x"], "is empty"),
        (["verify", str(pki / "device-1.pem")], "give --trust"),
        (["verify", str(pki / "device-1.pem"), "--enrollments", str(tmp_path / "bad.json")], "bad.json"),
        (["verify", str(pki / "device-1.pem"), "--trust", str(pki / "root-ca.pem"), "--at", "yesterday"], "RFC 3339"),
        (["verify", str(pki / "device-1.pem"), "--trust", "/dev/zero"], "limit"),
        (["frobnicate"], "unrecognized subcommand"),
    ]
    for argv, needle in cases:
        code, out, err = run(argv, policy)
        assert code == 2, (argv, out, err)
        assert needle in err, (argv, err)
    code, out, _ = run(["verify", str(pki / "device-1.pem"), "--json"], policy)
    assert code == 2 and json.loads(out)["verdict"] == "error"


def test_python_dash_m_attest_exits_with_the_decisions_code(pki: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "attest", "verify", str(pki / "device-4.pem"), "--enrollments", str(pki / "enrollments-2-line-b-disabled.json")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1, out.stderr
    assert "REFUSED   enrollment-group-disabled" in out.stdout
    assert subprocess.run([sys.executable, "-m", "attest", "--help"], capture_output=True).returncode == 0


def test_to_json_matches_serde_json() -> None:
    assert to_json({"b": 1, "a": 'x\u0001"\\\n\u007f\u00e9'}) == '{"a":"x\\u0001\\"\\\\\\n\u007f\u00e9","b":1}'
