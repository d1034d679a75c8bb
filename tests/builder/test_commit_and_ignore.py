"""`docker commit` through dockerd/builder/commit.py on a real container, and .dockerignore's
matcher against docker-py's implementation of the same rules."""

from __future__ import annotations

import os

import pytest
from docker.utils.build import PatternMatcher

from containerd.client import IO, Container, Runtime, get_image, normalize_name
from dockerd.builder import BuildRequestError
from dockerd.builder.commit import CommitRequest, commit_container
from dockerd.builder.dockerignore import Matcher, read_patterns
from runtime.spec_default import default_spec
from tests.builder.conftest import Env


def test_commit_a_container(env: Env) -> None:
    base = get_image(env.client, normalize_name("busybox"))
    from dockerd.builder.image import load_image

    chain = load_image(env.client, base.target).chain
    cid = "committed"
    spec = default_spec()
    spec["process"].update(args=["sh", "-c", "echo changed > /new; rm /bin/vi"], terminal=False)
    spec["root"] = {"path": "rootfs"}
    spec["linux"]["cgroupsPath"] = f"/pybuild-test-{os.getpid()}/{cid}"
    from dockerd.engine import initlayer

    mounts = env.client.snapshots().prepare(cid, chain)
    from containerd.client.mount import temp_mount

    with temp_mount(mounts, str(env.base)) as root:  # what pydockerd writes into every container
        initlayer.setup(root)
    env.client.containers.create(
        Container.with_oci_spec(cid, spec, runtime=Runtime(), snapshotter="overlayfs", snapshot_key=cid)
    )
    try:
        env.client.tasks.create(cid, mounts, IO())
        env.client.tasks.start(cid)
        assert env.client.tasks.wait(cid, timeout=60).status == 0
        env.client.tasks.delete(cid)
        with pytest.raises(BuildRequestError, match="run is not a valid change command"):
            commit_container(env.client, CommitRequest(cid, base.target, changes=["RUN true"]))
        image = commit_container(
            env.client,
            CommitRequest(
                cid, base.target, container_id=cid, container_config={"Cmd": ["sh", "-c", "echo changed > /new"]},
                changes=["ENV X=1", 'CMD ["cat", "/new"]', "EXPOSE 8080"], message="a message", author="me",
                names=[normalize_name("committed:1")],
            ),
            docker_version="pydocker-test",
        )  # fmt: skip
    finally:
        env.client.snapshots().remove(cid)
        env.client.containers.delete(cid)
    assert get_image(env.client, "docker.io/library/committed:1").target == image.manifest
    assert image.run_config["Cmd"] == ["cat", "/new"] and "X=1" in image.run_config["Env"]
    assert image.run_config["ExposedPorts"] == {"8080/tcp": {}}
    assert image.config["author"] == "me" and image.config["comment"] == "a message"
    assert (
        image.history[-1]["created_by"] == "sh -c echo changed > /new"
        and image.history[-1]["comment"] == "a message"
    )
    assert env.run(image.id, "sh", "-c", "cat /new; ls /bin/vi 2>&1; ls -a / | grep -c dockerenv") == (
        "changed\nls: /bin/vi: No such file or directory\n0\n"
    )


PATTERNS = "# comment\n*.log\n!keep.log\nbuild/\n**/tmp\ndocs/**/*.md\n!docs/keep/**\n/abs\na?c\n[xy].txt\nsub/*/deep\n"
PATHS = [
    "x.log", "keep.log", "sub/x.log", "build/a", "build", "a/tmp", "a/b/tmp/x", "tmp", "docs/a.md", "docs/x/y/z.md",
    "docs/keep/a.md", "abs", "abs/x", "abc", "a/c", "x.txt", "z.txt", "sub/q/deep", "sub/q/deep/f", "sub/deep",
]  # fmt: skip


def test_dockerignore_agrees_with_docker_py() -> None:
    patterns = read_patterns(PATTERNS)
    assert patterns[:3] == ["*.log", "!keep.log", "build"] and "abs" in patterns
    ours, theirs = Matcher(patterns), PatternMatcher(patterns)
    assert {p: ours.excluded(p) for p in PATHS} == {p: theirs.matches(p) for p in PATHS}
