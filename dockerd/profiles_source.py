"""Where Docker's default seccomp profile comes from, and how it is fetched.

pydockerd applies Docker's own `profiles/seccomp/default.json`, never a hand-written copy.
Debian builds golang-github-docker-docker-dev from the same docker.io source as the
reference dockerd, and that package ships the profile. Installing it would pull ~260 Go
source packages (and a systemd upgrade), so only its .deb is fetched (`apt-get download`)
and the one file extracted; `SOURCE` beside it records which package and version it came
from. (containers-common's /usr/share/containers/seccomp.json is not Docker's: Podman's
profile lets mount, unshare, clone with namespace flags, keyctl and ptrace through and leaves
them to capabilities.)

Used by scripts/setup (into the source tree) and by setup.py's build step (into a wheel), as
`python -m dockerd.profiles_source DIR`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import atomicfile

PACKAGE = "golang-github-docker-docker-dev"
MEMBER = "./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"
PROFILE_NAME = "seccomp-default.json"


def present(directory: Path) -> bool:
    return (directory / PROFILE_NAME).is_file() and (directory / "SOURCE").is_file()


def fetch(directory: Path) -> None:
    """Download the package's .deb and write the profile and SOURCE into `directory`."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # apt's download sandbox user must be able to write there
        try:
            shutil.chown(tmp, "_apt")
        except (LookupError, PermissionError):
            pass
        download = ["apt-get", "download", "-qq", PACKAGE]
        if subprocess.run(download, cwd=tmp, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(download, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (deb,) = Path(tmp).glob("*.deb")
        tarball = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True
        ).stdout
        profile = subprocess.run(
            ["tar", "-xO", MEMBER], input=tarball, check=True, capture_output=True
        ).stdout
        json.loads(profile)["syscalls"]  # a profile, not an error page
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        )
    directory.mkdir(parents=True, exist_ok=True)
    atomicfile.write_text(directory / "SOURCE", f"{PACKAGE} {version.stdout.strip()} {MEMBER[1:]}\n", 0o644)
    atomicfile.write_atomic(directory / PROFILE_NAME, profile, 0o644)


def main() -> int:
    directory = Path(sys.argv[1])
    if not present(directory):
        print(f"fetching Docker's default seccomp profile from Debian's {PACKAGE}", file=sys.stderr)
        fetch(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
