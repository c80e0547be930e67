"""The Python replica on snapshots this test signs itself (the format of
service/src/snapshot.rs): what applies, what is refused and leaves the
replica as it was, and what a device is told. The differential test in
host-cli/tests/hosts.rs compares it with the Rust replica on snapshots
host-http's service layer writes."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from attest import DEFAULT_MAX_AGE_SECONDS, Replica, SnapshotError, TrustKey, pem_certificates, rfc3339

# The gateway's clock in these tests, and the decisions' time: the demo
# PKI's certificates are valid from the test run on.
NOW = int(time.time()) + 120


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Service:
    """Signs snapshots as host-http does, with a key of its own."""

    def __init__(self, name: str = "0ne00000001") -> None:
        self.name = name
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.pem = self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.trust = TrustKey.from_pem(self.pem)

    def snapshot(self, version: int, records: list[dict], since: int | None = None, made_at: int = NOW, kid: str | None = None) -> bytes:
        kid = kid or self.trust.kid
        lines = [json.dumps({"attestSnapshot": 1, "service": self.name, "kid": kid, "version": version, "since": since, "madeAt": rfc3339(made_at)})]
        lines += [json.dumps(r) for r in records]
        body = "".join(f"{line}\n" for line in lines).encode()
        claims = {"iss": self.name, "iat": made_at, "ver": version, "since": since, "lines": len(lines), "sha256": hashlib.sha256(body).hexdigest()}
        signing_input = f"{b64url(json.dumps({'alg': 'EdDSA', 'kid': kid}).encode())}.{b64url(json.dumps(claims).encode())}"
        jwt = f"{signing_input}.{b64url(self.key.sign(signing_input.encode()))}"
        return body + json.dumps({"signature": jwt}).encode() + b"\n"


def group(gid: str, ca_pem: str, status: str = "enabled") -> dict:
    doc = {"enrollmentGroupId": gid, "provisioningStatus": status,
           "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": ca_pem}}}}}
    return {"put": "group", "id": gid, "etag": "e1", "doc": doc}


def chain(pki: Path, n: int) -> tuple[bytes, list[bytes]]:
    leaf, *rest = pem_certificates((pki / f"device-{n}.pem").read_text())
    return leaf, rest


@pytest.fixture
def gateway(tmp_path: Path, policy) -> Replica:
    return Replica(tmp_path / "gateway", policy)


def decide(replica: Replica, pki: Path, n: int, rid: str | None = None, **kw) -> dict:
    leaf, rest = chain(pki, n)
    return replica.resolve(rid or f"device-{n}", leaf, rest, **kw)


def test_a_group_disabled_on_the_service_refuses_after_the_delta(pki: Path, gateway: Replica, tmp_path: Path, policy) -> None:
    svc = Service()
    root = (pki / "root-ca.pem").read_text()
    assert gateway.apply(svc.snapshot(3, [group("all-devices", root)]), svc.trust, NOW) == {"from": None, "version": 3, "full": True, "records": 1}
    d = decide(gateway, pki, 1, time=NOW)
    assert (d["verdict"], d["enrollment"]) == ("accepted", {"kind": "enrollmentGroup", "id": "all-devices"})
    gateway.apply(svc.snapshot(4, [group("all-devices", root, "disabled")], since=3, made_at=NOW + 1), svc.trust, NOW + 1)
    d = decide(gateway, pki, 1, time=NOW + 1)
    assert d["refusal"]["code"] == "enrollment-group-disabled"
    # The replica is on disk: another process opens the same decision.
    again = Replica(tmp_path / "gateway", policy)
    assert again.state == {"service": svc.name, "kid": svc.trust.kid, "version": 4, "made_at": NOW + 1, "synced_at": NOW + 1}
    assert decide(again, pki, 1, time=NOW + 1) == d
    # A delete in a delta: the group and its CA, the only anchor, are gone.
    gateway.apply(svc.snapshot(5, [{"delete": "group", "id": "all-devices"}], since=4, made_at=NOW + 2), svc.trust, NOW + 2)
    assert decide(gateway, pki, 1, time=NOW + 2)["refusal"]["code"] == "unknown-issuer"


def test_whatever_does_not_verify_or_apply_leaves_the_replica_as_it_was(pki: Path, gateway: Replica, tmp_path: Path) -> None:
    svc, other = Service(), Service("0ne00000002")
    root = (pki / "root-ca.pem").read_text()
    good = svc.snapshot(5, [group("all-devices", root)])
    gateway.apply(good, svc.trust, NOW)
    on_disk = (tmp_path / "gateway" / "snapshot-replica.json").read_bytes()
    disabled = [group("all-devices", root, "disabled")]
    bad = {
        "wrong key": (svc.snapshot(6, disabled), other.trust),
        "another service": (other.snapshot(6, disabled), other.trust),
        "rollback": (svc.snapshot(4, disabled, made_at=NOW + 5), svc.trust),
        "replay of an older signing": (svc.snapshot(6, disabled, made_at=NOW - 5), svc.trust),
        "delta from another base": (svc.snapshot(7, disabled, since=6), svc.trust),
        "signed in the future": (svc.snapshot(6, disabled, made_at=NOW + 302), svc.trust),
        "kid of another key": (svc.snapshot(6, disabled, kid=other.trust.kid), svc.trust),
        "empty": (b"", svc.trust),
        "garbage": (b"\xff\xfe{not json\n", svc.trust),
    }
    newer = svc.snapshot(6, disabled, made_at=NOW + 1)
    for cut in (0, 1, len(newer) // 2, len(newer) - 1):
        bad[f"truncated to {cut}"] = (newer[:cut], svc.trust)
    for at in range(0, len(newer), 7):
        flipped = bytearray(newer)
        flipped[at] ^= 0x20 if flipped[at] != 0x0A else 0x01
        bad[f"byte {at} changed"] = (bytes(flipped), svc.trust)
    bad["line added after the signature"] = (newer + b"{}\n", svc.trust)
    for what, (data, key) in bad.items():
        with pytest.raises(SnapshotError):
            gateway.apply(data, key, NOW + 1)
            pytest.fail(f"{what}: applied")
        assert (tmp_path / "gateway" / "snapshot-replica.json").read_bytes() == on_disk, what
        assert gateway.state["version"] == 5, what
        assert decide(gateway, pki, 1, time=NOW)["verdict"] == "accepted", what
    assert gateway.apply(newer, svc.trust, NOW + 1)["version"] == 6


def test_a_delta_needs_a_full_snapshot_first(gateway: Replica) -> None:
    svc = Service()
    with pytest.raises(SnapshotError, match="holds no snapshot, and this is a delta"):
        gateway.apply(svc.snapshot(2, [], since=1), svc.trust, NOW)
    assert gateway.state is None
    with pytest.raises(TypeError, match="a snapshot is bytes"):
        gateway.apply("not bytes", svc.trust, NOW)
    with pytest.raises(SnapshotError, match="holds no snapshot yet"):
        gateway.resolve("device-1", b"", time=NOW)


def test_every_device_is_refused_once_the_snapshot_is_too_old(pki: Path, gateway: Replica) -> None:
    svc = Service()
    gateway.apply(svc.snapshot(1, [group("all-devices", (pki / "root-ca.pem").read_text())]), svc.trust, NOW)
    assert decide(gateway, pki, 2, time=NOW + DEFAULT_MAX_AGE_SECONDS)["verdict"] == "accepted"
    stale = decide(gateway, pki, 2, time=NOW + DEFAULT_MAX_AGE_SECONDS + 1)
    assert stale["refusal"]["code"] == "enrollments-stale"
    assert "1d 0h" not in stale["refusal"]["message"] and "1d 1s old" in stale["refusal"]["message"]
    assert decide(gateway, pki, 2, time=NOW + 61, max_age_seconds=60)["refusal"]["code"] == "enrollments-stale"
    # Stale wins over everything, even a device the replica has never heard of.
    assert decide(gateway, pki, 2, rid="nobody", time=NOW + 10**6)["refusal"]["code"] == "enrollments-stale"
    # A maximum age that is not a whole number of seconds is an error, never "not stale".
    for max_age in (float("nan"), "3600", -1, 1.5, None, True):
        with pytest.raises(TypeError):
            decide(gateway, pki, 2, time=NOW + 10**6, max_age_seconds=max_age)


def test_what_does_not_load_refuses_its_devices_instead_of_falling_through(pki: Path, gateway: Replica) -> None:
    svc = Service()
    root = (pki / "root-ca.pem").read_text()
    device_1 = {"registrationId": "device-1", "provisioningStatus": "enabled",
                "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": (pki / "device-1.pem").read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"}}}}}
    records = [
        group("all-devices", root),
        # An individual enrollment the service could not read, and one that
        # no longer loads: neither device may fall through to the group.
        {"put": "individual", "id": "device-2", "etag": "e", "unreadable": True},
        {"put": "individual", "id": "device-3", "etag": "e", "doc": {"registrationId": "device-3", "provisioningStatus": "maybe"}},
        {"put": "individual", "id": "device-1", "etag": "e", "doc": device_1},
    ]
    gateway.apply(svc.snapshot(1, records), svc.trust, NOW)
    d1 = decide(gateway, pki, 1, time=NOW)
    assert (d1["verdict"], d1["enrollment"]["kind"]) == ("accepted", "individualEnrollment")
    for n in (2, 3):
        d = decide(gateway, pki, n, time=NOW)
        assert d["verdict"] == "refused" and d["refusal"]["enrollment"] == {"kind": "individualEnrollment", "id": f"device-{n}"}, d
    # A group that does not load: its CA's devices are refused, naming it.
    line_b = (pki / "line-b-ca.pem").read_text()
    broken = group("line-b", line_b)
    broken["doc"]["provisioningStatus"] = "maybe"
    gateway.apply(svc.snapshot(2, [broken], since=1), svc.trust, NOW)
    d4 = decide(gateway, pki, 4, time=NOW)
    assert d4["verdict"] == "refused" and "the stored enrollment group 'line-b' cannot be loaded" in d4["refusal"]["message"], d4


def test_ca_references_name_verified_certificates_only(pki: Path, gateway: Replica) -> None:
    svc = Service()
    root_der = pem_certificates((pki / "root-ca.pem").read_text())[0]

    def cert(verified: bool) -> dict:
        return {"put": "certificate", "name": "root", "der": base64.b64encode(root_der).decode(), "verified": verified,
                "etag": "e", "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z"}

    ref = {"put": "group", "id": "by-ref", "etag": "e",
           "doc": {"enrollmentGroupId": "by-ref", "attestation": {"type": "x509", "x509": {"caReferences": {"primary": "root"}}}}}
    gateway.apply(svc.snapshot(1, [cert(True), ref]), svc.trust, NOW)
    assert decide(gateway, pki, 1, time=NOW)["enrollment"] == {"kind": "enrollmentGroup", "id": "by-ref"}
    gateway.apply(svc.snapshot(2, [cert(False)], since=1), svc.trust, NOW)
    assert decide(gateway, pki, 1, time=NOW)["verdict"] == "refused"


def test_a_damaged_replica_file_is_an_error_not_an_empty_replica(tmp_path: Path, policy) -> None:
    d = tmp_path / "gateway"
    d.mkdir()
    for text in ("", "{", '{"attestReplica": 2}', '{"attestReplica": 1, "service": "s"}', "\udcff"):
        (d / "snapshot-replica.json").write_text(text, errors="surrogateescape")
        with pytest.raises(SnapshotError, match="unreadable"):
            Replica(d, policy)


def test_a_trust_key_must_be_an_ed25519_public_key_in_pem() -> None:
    for text in ("", "garbage", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"):
        with pytest.raises(SnapshotError, match="not an Ed25519 public key"):
            TrustKey.from_pem(text)
    # The kid is the key's RFC 7638 thumbprint (RFC 8037 §A.3's example key).
    pem = serialization.load_der_public_key(bytes.fromhex("302a300506032b6570032100") + bytes.fromhex(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert TrustKey.from_pem(pem).kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
