"""A throw-away certificate authority for TLS tests, made with the openssl command line.

`make_pki(d)` writes into the directory d: ca.pem and ca-key.pem, then server.pem and
server-key.pem (valid for 127.0.0.1 and localhost), and client.pem and client-key.pem
(client authentication), all valid for one day.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, ca_name: str = "pydocker-test-ca") -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test's certificates")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
            "-days", "1", "-subj", f"/CN={ca_name}", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}-key.pem", "-out", f"{who}.csr",
                "-subj", f"/CN={who}", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-out", f"{who}.pem", "-days", "1", "-extfile", f"{who}.ext", cwd=d)  # fmt: skip
    return d
