"""Enrollment sets in DPS JSON shapes (what ``host-cli verify
--enrollments`` reads), with the Rust hosts' loader rules (attest-dps).
Lookup keys (CA identity, subject name key) come from the component's own
``index-certificate``."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable

from asn1crypto import x509 as _x509

from ._pem import pem_certificates, strict_base64


class EnrollmentError(ValueError):
    """An enrollment document or set that is not usable; the message names the entry and field."""


ENTRY_FIELDS = [
    "registrationId", "enrollmentGroupId", "deviceId", "provisioningStatus", "attestation",
    "allocationPolicy", "iotHubs", "iotHubHostName", "customAllocationDefinition", "reprovisionPolicy",
    "initialTwin", "capabilities", "optionalDeviceInformation", "registrationState", "etag",
    "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "clientCertificateIssuancePolicy",
    "revocationPolicy",
]
REVOCATION_CHECKS = ("off", "leaf", "chain", "configured")
REVOCATION_FIELDS = ("check", "admitUndetermined", "admitExpiredCrl")
#: An entry's revocation policy when it names none.
DEFAULT_REVOCATION = {"check": "configured", "admit_undetermined": False, "admit_expired": False}
#: The answer for an entry a set does not hold: the strictest.
STRICTEST_REVOCATION = {"check": "chain", "admit_undetermined": False, "admit_expired": False}


def _revocation_policy(v: Any) -> dict[str, Any]:
    """attest's ``revocationPolicy`` (see attest-dps's enrollment module)."""
    if v is None:
        return dict(DEFAULT_REVOCATION)
    if not isinstance(v, dict):
        raise EnrollmentError(f"revocationPolicy: expected an object, found {json.dumps(v)}")
    for k in v:
        if k not in REVOCATION_FIELDS:
            raise EnrollmentError(f"revocationPolicy: unknown field `{k}`, expected one of " + ", ".join(f"`{f}`" for f in REVOCATION_FIELDS))
    check = v.get("check")
    check = "configured" if check is None else check
    if check not in REVOCATION_CHECKS:
        raise EnrollmentError(f'revocationPolicy: check {json.dumps(check)} is not one of "off", "leaf", "chain", "configured"')
    for k in ("admitUndetermined", "admitExpiredCrl"):
        if v.get(k) is not None and not isinstance(v.get(k), bool):
            raise EnrollmentError(f"revocationPolicy: {k} must be true or false")
    return {"check": check, "admit_undetermined": v.get("admitUndetermined") is True, "admit_expired": v.get("admitExpiredCrl") is True}
ATTESTATION_FIELDS = ["type", "x509", "tpm", "symmetricKey"]
X509_FIELDS = ["clientCertificates", "signingCertificates", "caReferences"]
PAIR_FIELDS = ["primary", "secondary"]
NESTED_FIELDS = [
    ("reprovisionPolicy", ["updateHubAssignment", "migrateDeviceData"]),
    ("customAllocationDefinition", ["webhookUrl", "apiVersion"]),
    ("capabilities", ["iotEdge"]),
]
CERT_FIELDS = ["certificate", "info"]


def _lower(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def _debug(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _canonical_keys(obj: dict[str, Any], known: list[str], at: str) -> dict[str, Any]:
    def squash(s: str) -> str:
        return re.sub(r"[_\- ]", "", s).lower()

    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = next((k for k in known if _lower(k) == _lower(key)), None)
        if name is None:
            near = next((k for k in known if squash(k) == squash(key)), None)
            if near is not None:
                raise EnrollmentError(f"{at}field {_debug(key)} is not a DPS field; did you mean {_debug(near)}?")
            name = key
        if name in out:
            raise EnrollmentError(f"{at}field {_debug(name)} appears more than once (keys are case-insensitive)")
        out[name] = value
    return out


def _normalize(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise EnrollmentError("an enrollment must be a JSON object")
    top = _canonical_keys(doc, ENTRY_FIELDS, "")
    if "provisioningStatus" in top and not isinstance(top["provisioningStatus"], str):
        shown = json.dumps(top["provisioningStatus"], separators=(",", ":"))
        raise EnrollmentError(f'provisioningStatus is {shown}; it must be "enabled" or "disabled"')
    for name, fields in NESTED_FIELDS:
        if isinstance(top.get(name), dict):
            top[name] = _canonical_keys(top[name], fields, f"{name}.")
    if isinstance(top.get("attestation"), dict):
        attestation = _canonical_keys(top["attestation"], ATTESTATION_FIELDS, "attestation.")
        if isinstance(attestation.get("x509"), dict):
            x509 = _canonical_keys(attestation["x509"], X509_FIELDS, "attestation.x509.")
            for name, value in list(x509.items()):
                if not isinstance(value, dict):
                    continue
                at = f"attestation.x509.{name}."
                pair = _canonical_keys(value, PAIR_FIELDS, at)
                if name != "caReferences":
                    for which, cert in list(pair.items()):
                        if isinstance(cert, dict):
                            pair[which] = _canonical_keys(cert, CERT_FIELDS, f"{at}{which}.")
                x509[name] = pair
            attestation["x509"] = x509
        top["attestation"] = attestation
    return top


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _typed(value: Any, kind: str, field: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        article = "an" if kind in ("object", "array") else "a"
        raise EnrollmentError(f"not a DPS enrollment: {field} must be {article} {kind}")
    return value


def _read_entry(doc: Any) -> dict[str, Any]:
    e = _normalize(doc)
    attestation = _typed(e.get("attestation"), "object", "attestation")
    x509 = None
    if attestation is not None:
        if not isinstance(attestation.get("type"), str):
            raise EnrollmentError("not a DPS enrollment: attestation.type must be a string")
        x509 = _typed(attestation.get("x509"), "object", "attestation.x509")

    def pair(v: Any, name: str, certs: bool) -> dict[str, Any] | None:
        p = _typed(v, "object", f"attestation.x509.{name}")
        if p is None:
            return None
        out = {}
        for which in ("primary", "secondary"):
            c = p.get(which)
            if not certs:
                out[which] = _typed(c, "string", f"attestation.x509.{name}.{which}")
            else:
                o = _typed(c, "object", f"attestation.x509.{name}.{which}")
                out[which] = None if o is None else {"certificate": _typed(o.get("certificate"), "string", f"attestation.x509.{name}.{which}.certificate")}
        return out

    for i, hub in enumerate(_typed(e.get("iotHubs"), "array", "iotHubs") or []):
        _typed(hub, "string", f"iotHubs[{i}]")
    reprovision = _typed(e.get("reprovisionPolicy"), "object", "reprovisionPolicy")
    if reprovision is not None:
        _typed(reprovision.get("updateHubAssignment"), "boolean", "reprovisionPolicy.updateHubAssignment")
        _typed(reprovision.get("migrateDeviceData"), "boolean", "reprovisionPolicy.migrateDeviceData")
    _typed(e.get("allocationPolicy"), "string", "allocationPolicy")
    _typed(e.get("iotHubHostName"), "string", "iotHubHostName")
    return {
        "registrationId": _typed(e.get("registrationId"), "string", "registrationId"),
        "enrollmentGroupId": _typed(e.get("enrollmentGroupId"), "string", "enrollmentGroupId"),
        "deviceId": _typed(e.get("deviceId"), "string", "deviceId"),
        "provisioningStatus": e.get("provisioningStatus"),
        "revocation": _revocation_policy(e.get("revocationPolicy")),
        "attestation": None
        if attestation is None
        else {
            "type": attestation["type"],
            "x509": None
            if x509 is None
            else {
                "clientCertificates": pair(x509.get("clientCertificates"), "clientCertificates", True),
                "signingCertificates": pair(x509.get("signingCertificates"), "signingCertificates", True),
                "caReferences": pair(x509.get("caReferences"), "caReferences", False),
            },
        },
    }


def _enabled(status: str | None) -> bool:
    if status is None or _lower(status) == "enabled":
        return True
    if _lower(status) == "disabled":
        return False
    raise EnrollmentError(f'provisioningStatus {_debug(status)} is neither "enabled" nor "disabled"')


def _x509_of(attestation: dict[str, Any] | None) -> dict[str, Any]:
    if attestation is None:
        raise EnrollmentError("attestation is missing")
    if _lower(attestation["type"]) != "x509":
        raise EnrollmentError(f'attestation type {_debug(attestation["type"])} is not supported; attest handles "x509"')
    if attestation["x509"] is None:
        raise EnrollmentError("attestation.x509 is missing")
    return attestation["x509"]


def one_certificate(text: str) -> bytes:
    """One certificate given as PEM or as bare base64 of its DER."""
    if "-----BEGIN" in text:
        try:
            certs = pem_certificates(text)
        except ValueError as e:
            raise EnrollmentError(f"not valid PEM: {e}") from None
        if len(certs) != 1:
            raise EnrollmentError(f"expected one certificate, found {len(certs)}")
        return certs[0]
    der = strict_base64(re.sub(r"[ \t\n\r\f]", "", text))
    if der is None:
        raise EnrollmentError("certificate is neither PEM nor base64 DER")
    return der


def _certificates(pair: dict[str, Any] | None, what: str) -> list[bytes]:
    if pair is None:
        raise EnrollmentError(f"attestation.x509.{what} is missing")
    primary = (pair.get("primary") or {}).get("certificate")
    if primary is None:
        raise EnrollmentError(f"attestation.x509.{what}.primary.certificate is missing")
    out = []
    try:
        out.append(one_certificate(primary))
    except EnrollmentError as e:
        raise EnrollmentError(f"{what}.primary: {e}") from None
    secondary = (pair.get("secondary") or {}).get("certificate")
    if secondary is not None:
        try:
            out.append(one_certificate(secondary))
        except EnrollmentError as e:
            raise EnrollmentError(f"{what}.secondary: {e}") from None
    return out


def _ca_facts(der: bytes) -> tuple[bool, bool] | None:
    """A v3 certificate's (cA, keyCertSign allowed); None for v1/v2 or one that does not parse."""
    try:
        tbs = _x509.Certificate.load(der)["tbs_certificate"]
        if tbs["version"].native != "v3":
            return None
        extensions = list(tbs["extensions"])
    except Exception:  # noqa: BLE001 - unparsable: left to path validation
        return None
    ca, key_cert_sign = False, True
    for ext in extensions:
        try:
            oid = ext["extn_id"].dotted
        except Exception:  # noqa: BLE001
            return None
        if oid == "2.5.29.19":
            try:
                ca = ext["extn_value"].parsed["ca"].native is True
            except Exception:  # noqa: BLE001
                ca = False
        elif oid == "2.5.29.15":
            try:
                key_cert_sign = "key_cert_sign" in ext["extn_value"].parsed.native
            except Exception:  # noqa: BLE001
                key_cert_sign = False
    return ca, key_cert_sign


def common_name(der: bytes) -> str | None | bool:
    """The leaf's subject CN as the policy core reads it: the first
    commonName that is a UTF8String, PrintableString or IA5String. None if
    there is none, False if the certificate does not parse."""
    try:
        subject = _x509.Certificate.load(der)["tbs_certificate"]["subject"]
        for rdn in subject.chosen:
            for atv in rdn:
                if atv["type"].dotted != "2.5.4.3":
                    continue
                value = atv["value"]
                chosen = getattr(value, "chosen", value)
                if type(chosen).__name__ in ("UTF8String", "PrintableString", "IA5String"):
                    return str(chosen.native)
        return None
    except Exception:  # noqa: BLE001
        return False


_REGISTRATION_ID = re.compile(r"[A-Za-z0-9]([A-Za-z0-9\-._:]*[A-Za-z0-9])?")
_DEVICE_SPECIALS = "-.+%_#*?!(),:=@$'"


def _shown(s: str) -> str:
    return _debug(s[:40])


def _check_registration_id(rid: str) -> None:
    if len(rid.encode()) > 128 or not _REGISTRATION_ID.fullmatch(rid) or not rid.isascii():
        raise EnrollmentError(f"registration ID {_shown(rid)} must be 1 to 128 characters of a-z 0-9 - . _ :, beginning and ending with a letter or digit")


def _check_group_id(gid: str) -> None:
    if len(gid.encode()) > 128 or not _REGISTRATION_ID.fullmatch(gid) or not gid.isascii():
        raise EnrollmentError(f"enrollmentGroupId {_shown(gid)} must be 1 to 128 characters of a-z A-Z 0-9 - . _ :, beginning and ending with a letter or digit")


def _check_device_id(did: str) -> None:
    if not did or len(did.encode()) > 128 or not all((c.isascii() and c.isalnum()) or c in _DEVICE_SPECIALS for c in did):
        raise EnrollmentError(f"deviceId {_shown(did)} must be 1 to 128 characters of a-z A-Z 0-9 {_DEVICE_SPECIALS} (IoT Hub's device ID rules)")


def _ca_keys(der: bytes, policy: Any) -> dict[str, bytes]:
    out = policy.index_certificate(der)
    if "refusal" in out:
        raise EnrollmentError(f"CA certificate is not usable: {out['refusal']['message']}")
    return out


def load_individual(doc: Any, policy: Any) -> dict[str, Any]:
    """One DPS IndividualEnrollment document, loaded as the Rust hosts'
    ``IndividualEntry::load`` does: the lookup answer the component is
    handed (``registration_id``, ``device_id``, ``enabled``, ``certificates``
    as SHA-256 digests). Raises EnrollmentError."""
    e = _read_entry(doc)
    rid = e["registrationId"]
    if rid is None:
        raise EnrollmentError("registrationId is missing")
    _check_registration_id(rid)
    if e["deviceId"] is not None:
        _check_device_id(e["deviceId"])
    enabled = _enabled(e["provisioningStatus"])
    certs = _certificates(_x509_of(e["attestation"])["clientCertificates"], "clientCertificates")
    for der, which in zip(certs, ("primary", "secondary")):
        keys = policy.index_certificate(der)
        if "refusal" in keys:
            raise EnrollmentError(f"clientCertificates.{which} is not a usable certificate: {keys['refusal']['message']}")
        facts = _ca_facts(der)
        if facts is not None and facts[0]:
            raise EnrollmentError(
                f"clientCertificates.{which} is a CA certificate; an individual enrollment holds a device certificate (enroll a CA as an enrollment group)"
            )
    return {
        "registration_id": rid,
        "device_id": e["deviceId"],
        "enabled": enabled,
        "certificates": [hashlib.sha256(d).digest() for d in certs],
        "revocation": e["revocation"],
    }


def load_group(doc: Any, policy: Any, ca_reference: Callable[[str], bytes | None] | None = None) -> dict[str, Any]:
    """One DPS EnrollmentGroup document, loaded as the Rust hosts'
    ``GroupEntry::load`` does. ``ca_reference(name)`` resolves a
    ``caReferences`` name to a verified CA certificate's DER (None: unknown
    or not verified); without it, ``caReferences`` are refused. Returns
    ``{"group_id", "enabled", "cas": [(der, keys)], "anchors"}`` (anchors:
    the CAs are the group's own trust anchors, ``signingCertificates``).
    Raises EnrollmentError."""
    g = _read_entry(doc)
    gid = g["enrollmentGroupId"]
    if gid is None:
        raise EnrollmentError("enrollmentGroupId is missing")
    _check_group_id(gid)
    enabled = _enabled(g["provisioningStatus"])
    x509 = _x509_of(g["attestation"])
    if x509["signingCertificates"] is not None and x509["caReferences"] is not None:
        raise EnrollmentError(
            "attestation.x509 has both signingCertificates and caReferences; an enrollment group names one CA, one way"
        )
    if x509["caReferences"] is not None:
        ders = []
        for name in (x509["caReferences"]["primary"], x509["caReferences"]["secondary"]):
            if name is None:
                continue
            der = ca_reference(name) if ca_reference is not None else None
            if der is None:
                raise EnrollmentError(f"caReferences names CA certificate '{name}', which is not a verified CA certificate of this service")
            ders.append(der)
        if not ders:
            raise EnrollmentError("caReferences.primary is missing")
        anchors = False
    else:
        if x509["signingCertificates"] is None:
            raise EnrollmentError("attestation.x509 needs signingCertificates or caReferences")
        ders = _certificates(x509["signingCertificates"], "signingCertificates")
        for der, which in zip(ders, ("primary", "secondary")):
            facts = _ca_facts(der)
            why = None
            if facts is not None and not facts[0]:
                why = "is not a CA certificate (basicConstraints cA is not true)"
            elif facts is not None and not facts[1]:
                why = "is a CA certificate whose keyUsage lacks keyCertSign"
            if why:
                raise EnrollmentError(f"signingCertificates.{which} {why}: it cannot issue device certificates, so the group could never admit one")
        anchors = True
    cas = [(der, _ca_keys(der, policy)) for der in ders]
    return {"group_id": gid, "enabled": enabled, "cas": cas, "anchors": anchors, "revocation": g["revocation"]}


def readable_group_certificates(doc: Any, ca_reference: Callable[[str], bytes | None]) -> list[bytes]:
    """The CA certificates that can still be read from a group document
    that does not load (the Rust hosts' ``readable_group_certificates``):
    its signing certificates that parse and the verified CA certificates it
    names. Lenient on purpose: their CAs refuse while the group is broken."""
    d = doc
    try:
        d = _normalize(doc)
    except Exception:  # noqa: BLE001 - lenient on purpose, as the Rust and Node.js hosts are
        d = doc

    def at(o: Any, k: str) -> Any:
        return o.get(k) if isinstance(o, dict) else None

    x509 = at(at(d, "attestation"), "x509")
    out = []
    for which in ("primary", "secondary"):
        text = at(at(at(x509, "signingCertificates"), which), "certificate")
        if isinstance(text, str):
            try:
                out.append(one_certificate(text))
            except EnrollmentError:
                pass  # not readable: skipped
        name = at(at(x509, "caReferences"), which)
        if isinstance(name, str):
            der = ca_reference(name)
            if der is not None:
                out.append(der)
    return out


#: Deepest nesting of arrays and objects the Rust hosts' JSON parser reads (serde_json's limit).
MAX_NESTING = 127

_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _nesting(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings, without recursing."""
    depth = deepest = 0
    for m in _STRUCTURE.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


class EnrollmentSet:
    """An in-memory enrollment set answering the component's lookups: pass it
    to :meth:`Policy.resolve` / :meth:`Policy.attest`."""

    def __init__(self, policy: Any) -> None:
        self._policy = policy
        self._individuals: dict[str, dict[str, Any]] = {}
        self._groups: dict[bytes, dict[str, Any]] = {}
        self._anchors: dict[bytes, list[bytes]] = {}
        self._group_ids: set[str] = set()
        self._revocations: dict[tuple[str, str], dict[str, Any]] = {}

    @classmethod
    def from_json(cls, text: str, policy: Any) -> "EnrollmentSet":
        """Parses an enrollment file (``individualEnrollments``, ``enrollmentGroups``)."""
        if _nesting(text) > MAX_NESTING:
            raise EnrollmentError(f"not an enrollment set in DPS JSON shapes: nested more than {MAX_NESTING} levels deep")
        try:
            file = json.loads(text)
        except ValueError as e:
            raise EnrollmentError(f"not an enrollment set in DPS JSON shapes: {e}") from None
        except RecursionError:
            raise EnrollmentError("not an enrollment set in DPS JSON shapes: nested too deeply") from None
        if not isinstance(file, dict):
            raise EnrollmentError("not an enrollment set in DPS JSON shapes: expected an object")
        for field in ("individualEnrollments", "enrollmentGroups"):
            if field in file and not isinstance(file[field], list):
                raise EnrollmentError(f"not an enrollment set in DPS JSON shapes: {field} must be an array")
        s = cls(policy)

        def label(d: Any) -> str:
            ident = d.get("registrationId", d.get("enrollmentGroupId")) if isinstance(d, dict) else None
            return f" ('{ident}')" if isinstance(ident, str) else ""

        for i, e in enumerate(file.get("individualEnrollments", [])):
            try:
                s.insert_individual(e)
            except EnrollmentError as err:
                raise EnrollmentError(f"individualEnrollments[{i}]{label(e)}: {err}") from None
        for i, g in enumerate(file.get("enrollmentGroups", [])):
            try:
                s.insert_group(g)
            except EnrollmentError as err:
                raise EnrollmentError(f"enrollmentGroups[{i}]{label(g)}: {err}") from None
        return s

    def insert_individual(self, doc: Any) -> None:
        """Adds one DPS IndividualEnrollment document."""
        entry = load_individual(doc, self._policy)
        key = _lower(entry["registration_id"])
        if key in self._individuals:
            raise EnrollmentError("registration ID appears more than once")
        self._individuals[key] = entry
        self._revocations[("individual", key)] = entry["revocation"]

    def insert_group(self, doc: Any) -> None:
        """Adds one DPS EnrollmentGroup document (with signingCertificates)."""
        g = load_group(doc, self._policy)
        gid = g["group_id"]
        if gid in self._group_ids:
            raise EnrollmentError("enrollment group ID appears more than once")
        for _, keys in g["cas"]:
            other = self._groups.get(keys["ca_identity"])
            if other is not None:
                raise EnrollmentError(f"its CA (same subject and public key) is already the CA of enrollment group '{other['group_id']}'")
        group = {"group_id": gid, "enabled": g["enabled"]}
        for der, keys in g["cas"]:
            self._groups[keys["ca_identity"]] = group
            self._add_anchor(der, keys["subject_key"])
        self._group_ids.add(gid)
        self._revocations[("group", gid)] = g["revocation"]

    def add_anchor(self, der: bytes) -> None:
        """Trusts a CA certificate (DER) as an anchor (a verified CA, ``--trust``)."""
        self._add_anchor(der, _ca_keys(der, self._policy)["subject_key"])

    def _add_anchor(self, der: bytes, subject_key: bytes) -> None:
        anchors = self._anchors.setdefault(subject_key, [])
        if der not in anchors:
            anchors.append(der)

    def anchors(self) -> list[bytes]:
        """Every trust anchor (DER): the groups' CA certificates and added anchors."""
        return [der for ders in self._anchors.values() for der in ders]

    @property
    def counts(self) -> tuple[int, int]:
        """Number of individual enrollments and groups."""
        return len(self._individuals), len(self._group_ids)

    # The component's lookups.
    def individual(self, registration_id: str) -> dict[str, Any] | None:
        return self._individuals.get(_lower(registration_id))

    def group(self, ca_identity: bytes) -> dict[str, Any] | None:
        return self._groups.get(bytes(ca_identity))

    def trust_anchors(self, subject_key: bytes) -> list[bytes]:
        return list(self._anchors.get(bytes(subject_key), []))

    def revocation(self, kind: str, entry_id: str) -> dict[str, Any]:
        """The revocation policy of an entry (kind ``individual`` or ``group``)."""
        key = _lower(entry_id) if kind == "individual" else entry_id
        return self._revocations.get((kind, key), STRICTEST_REVOCATION)
