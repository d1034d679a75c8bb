"""PullImage with credentials (kubelet's imagePullSecrets; crictl pull --creds/--auth) from a
registry that wants them, Basic and Bearer token, through pycontainerd's puller and, with the
same test body, containerd 1.6's: the right credentials pull, none or wrong ones are refused
and leave no image."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest

from tests.cri.harness import Engine, registry


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_pull_with_credentials(engine: Engine, tmp_path: Path, mode: str) -> None:
    e = engine
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("puller:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    flags = ["--htpasswd", str(htpasswd), *(["--token"] if mode == "token" else [])]
    with registry(e.base, e.ns, f"private-{mode}", flags, creds="puller:s3cret") as reg:
        ref = f"{reg.host}/library/busybox:latest"
        anonymous = e.crictl("pull", ref, check=False)
        # "authentication required", "401 Unauthorized", "may require authorization"
        assert anonymous.returncode != 0 and "auth" in anonymous.stderr.lower(), anonymous.stderr
        wrong = e.crictl("pull", "--creds", "puller:nope", ref, check=False)
        assert wrong.returncode != 0, wrong.stdout
        assert [i for i in e.json("images")["images"] if ref in i["repoTags"]] == []
        e.crictl("pull", "--creds", "puller:s3cret", ref)
        assert [i for i in e.json("images")["images"] if ref in i["repoTags"]]
        e.crictl("rmi", ref)
        auth = base64.b64encode(b"puller:s3cret").decode()
        e.crictl("pull", "--auth", auth, ref)
        assert [i for i in e.json("images")["images"] if ref in i["repoTags"]]
