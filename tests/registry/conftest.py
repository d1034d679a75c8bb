"""Fixtures for the registry tests: pyregistry servers on loopback, a test CA, htpasswd files."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.registry_harness import Server, htpasswd, pyregistry

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Server]:
    """A fresh pyregistry without auth, on its own temp root."""
    with pyregistry(tmp_path) as server:
        yield server


def make_htpasswd(directory: Path) -> Path:
    path = directory / "htpasswd"
    for user, password in USERS.items():
        htpasswd(path, user, password)
    return path


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl). Returns (ca dir, cert, key).

    The CA directory holds only ca.crt, the layout skopeo's --cert-dir expects.
    """
    ca_dir = directory / "ca"
    ca_dir.mkdir()
    ca_key, ca_crt = directory / "ca.key", ca_dir / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_crt),
        "-days",
        "2",
        "-subj",
        "/CN=pyregistry test CA",
    )
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return ca_dir, crt, key
