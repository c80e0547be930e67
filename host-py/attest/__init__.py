"""attest's policy component in Python: the same WebAssembly component the
Rust hosts embed, run by wasmtime-py, with the same decisions.

>>> from attest import Policy, EnrollmentSet
>>> policy = Policy()
>>> enrollments = EnrollmentSet.from_json(open("enrollments.json").read(), policy)
>>> decision = policy.resolve("device-1", leaf_der, [ca_der], enrollments)
>>> decision["verdict"]          # "accepted" or "refused"; a refusal is a value
"""

from ._crypto import ALGORITHMS, verify_signature
from ._enrollments import EnrollmentError, EnrollmentSet, common_name, load_group, load_individual
from ._pem import pem_certificates
from ._policy import WIT, CrlError, CrlSet, HostError, Limits, Policy, component_bytes, component_sha256
from ._report import rfc3339, to_json
from ._snapshot import DEFAULT_MAX_AGE_SECONDS, Replica, SnapshotError, TrustKey, read_snapshot, stale_refusal

__all__ = [
    "ALGORITHMS", "CrlError", "CrlSet", "DEFAULT_MAX_AGE_SECONDS", "EnrollmentError", "EnrollmentSet", "HostError", "Limits",
    "Policy", "Replica", "SnapshotError", "TrustKey", "WIT", "common_name", "component_bytes",
    "component_sha256", "load_group", "load_individual", "pem_certificates", "read_snapshot",
    "rfc3339", "stale_refusal", "to_json", "verify_signature",
]
