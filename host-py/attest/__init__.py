"""attest's policy component in Python: the same WebAssembly component the
Rust hosts embed, run by wasmtime-py, with the same decisions.

>>> from attest import Policy, EnrollmentSet
>>> policy = Policy()
>>> enrollments = EnrollmentSet.from_json(open("enrollments.json").read(), policy)
>>> decision = policy.resolve("device-1", leaf_der, [ca_der], enrollments)
>>> decision["verdict"]          # "accepted" or "refused"; a refusal is a value
"""

from ._crypto import ALGORITHMS, verify_signature
from ._enrollments import EnrollmentError, EnrollmentSet, common_name
from ._pem import pem_certificates
from ._policy import WIT, HostError, Limits, Policy, component_bytes, component_sha256
from ._report import rfc3339, to_json

__all__ = [
    "ALGORITHMS", "EnrollmentError", "EnrollmentSet", "HostError", "Limits", "Policy", "WIT",
    "common_name", "component_bytes", "component_sha256", "pem_certificates", "rfc3339",
    "to_json", "verify_signature",
]
