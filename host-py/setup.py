"""Puts the policy component into the package at build time: the exact
bytes policy-host embeds, from `host-cli component --out` ($ATTEST_HOST_CLI
if set, else `cargo run -p host-cli` in the repository), or the file
$ATTEST_COMPONENT names."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class BuildWithComponent(build_py):
    def run(self):
        out = HERE / "attest" / "attest-policy.wasm"
        if os.environ.get("ATTEST_COMPONENT"):
            shutil.copyfile(os.environ["ATTEST_COMPONENT"], out)
        elif os.environ.get("ATTEST_HOST_CLI"):
            subprocess.run([os.environ["ATTEST_HOST_CLI"], "component", "--out", str(out)], check=True)
        elif (ROOT / "Cargo.toml").exists():
            subprocess.run(
                ["cargo", "run", "--quiet", "-p", "host-cli", "--", "component", "--out", str(out)],
                cwd=ROOT,
                check=True,
            )
        elif not out.exists():
            raise SystemExit("attest-host: no policy component: set ATTEST_COMPONENT or build from the attest repository")
        super().run()


setup(cmdclass={"build_py": BuildWithComponent})
