from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(sys.version_info < (3, 13), reason="SSLSocket.get_unverified_chain needs Python 3.13")
def test_the_ssl_gateway_example_admits_and_refuses(pki: Path, tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", "/CN=localhost", "-days", "1", "-keyout", str(tmp_path / "gw.key"), "-out", str(tmp_path / "gw.pem")],
        check=True, capture_output=True,
    )
    gateway, device = _load("gateway"), _load("device")
    decisions = []
    gw = gateway.Gateway(str(tmp_path / "gw.pem"), str(tmp_path / "gw.key"),
                         (pki / "enrollments-2-line-b-disabled.json").read_text(), port=0, on_decision=decisions.append)
    threading.Thread(target=gw.serve_forever, daemon=True).start()
    try:
        def register(n: int) -> str:
            return device.register(str(pki / f"device-{n}.pem"), str(pki / f"device-{n}.key"), port=gw.port)

        assert register(1) == "admitted device-1 by enrollmentGroup 'all-devices'"
        refused = register(4)
        assert refused.startswith("refused enrollment-group-disabled: ")
        assert refused.endswith("(chain position 1 'CN=attest demo line B CA')")
        assert [d["verdict"] for d in decisions] == ["accepted", "refused"]
    finally:
        gw.close()
