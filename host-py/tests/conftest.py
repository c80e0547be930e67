"""Test fixtures: a demo PKI written by the Rust CLI (``host-cli pki demo``),
the generator the Rust tests use, so that no certificate is committed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def host_cli() -> str:
    if os.environ.get("ATTEST_HOST_CLI"):
        return os.environ["ATTEST_HOST_CLI"]
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "host-cli"
        if p.exists():
            return str(p)
    raise RuntimeError("host-cli not found: run `cargo build` or set ATTEST_HOST_CLI")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    subprocess.run([host_cli(), "pki", "demo", str(d)], check=True, capture_output=True)
    return d


@pytest.fixture(scope="session")
def policy():
    from attest import Policy

    return Policy()
