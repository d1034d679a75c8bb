"""What docker-compose asks of an engine besides networks, volumes and build, checked through
the Docker CLI against the reference dockerd and pydockerd with the same expectations:

- legacy links (every `compose run` sends them, linking the one-off container to the
  service's own): dockerd's checks at create and the "/child:/parent/alias" view;
- container events carry the container's labels, image and name (an attached `compose up`
  follows its project through `/events` filtered on the project label);
- a pull from a registry nothing listens on fails with Go's dial wording."""

from __future__ import annotations

import json
import time
import uuid

import docker

from tests.dockerd_ref import RefDockerd


def _names(tag: str, *labels: str) -> list[str]:
    return [f"pdc-{label}-{tag}" for label in labels]


def test_links_checked_and_shown(dockerd: RefDockerd) -> None:
    tag = uuid.uuid4().hex[:8]
    child, parent, other = _names(tag, "child", "parent", "other")
    try:
        dockerd.docker_ok("create", "--name", child, "--network", "none", "busybox", "sleep", "300")
        dockerd.docker_ok("create", "--name", parent, "--network", "none", "--link", f"{child}:kid", "--link", child,
                          "busybox", "true")  # fmt: skip
        links = json.loads(dockerd.docker_ok("inspect", "-f", "{{json .HostConfig.Links}}", parent))
        assert sorted(links) == [f"/{child}:/{parent}/kid", f"/{child}:/{parent}/{child}"]
        # by id prefix: shown by the child's name
        dockerd.docker_ok("create", "--name", other, "--network", "none", "--link", f"{dockerd.docker_ok('inspect', '-f', '{{.Id}}', child)[:12]}:k",
                          "busybox", "true")  # fmt: skip
        assert json.loads(dockerd.docker_ok("inspect", "-f", "{{json .HostConfig.Links}}", other)) == [
            f"/{child}:/{other}/k"
        ]
        assert json.loads(dockerd.docker_ok("inspect", "-f", "{{json .HostConfig.Links}}", child)) is None
        missing = dockerd.docker(
            "create", "--network", "none", "--link", "pdc-no-such-child:x", "busybox", "true"
        )
        assert missing.returncode == 1
        assert missing.stderr.splitlines()[0] == (
            "Error response from daemon: could not get container for pdc-no-such-child: No such container: pdc-no-such-child"
        )
        # The child removed: the parent still shows the link (dockerd's link graph keeps it).
        dockerd.docker_ok("rm", child)
        assert sorted(
            json.loads(dockerd.docker_ok("inspect", "-f", "{{json .HostConfig.Links}}", parent))
        ) == sorted(links)
    finally:
        dockerd.docker("rm", "-f", child, parent, other)


def test_container_events_carry_labels_image_and_name(dockerd: RefDockerd) -> None:
    tag = uuid.uuid4().hex[:8]
    (name,) = _names(tag, "events")
    since = f"{time.time():.3f}"
    try:
        dockerd.docker_ok("run", "-d", "--name", name, "--network", "none", "--label", f"pdc.project={tag}",
                          "--label", "pdc.role=web", "busybox", "sleep", "300")  # fmt: skip
        dockerd.docker_ok("pause", name)
        dockerd.docker_ok("unpause", name)
        dockerd.docker_ok("kill", name)
        dockerd.docker_ok("wait", name)
        dockerd.docker_ok("rm", name)
        until = f"{time.time() + 1:.3f}"
        seen = dockerd.docker_ok("events", "--since", since, "--until", until, "--filter", f"label=pdc.project={tag}",
                                 "--format", "{{.Action}} {{json .Actor.Attributes}}").splitlines()  # fmt: skip
    finally:
        dockerd.docker("rm", "-f", name)
    actions = [line.split(" ", 1)[0] for line in seen]
    assert actions == ["create", "start", "pause", "unpause", "kill", "die", "destroy"], seen
    base = {"image": "busybox", "name": name, "pdc.project": tag, "pdc.role": "web"}
    extra = {"kill": {"signal": "9"}, "die": {"exitCode": "137"}}
    for line, action in zip(seen, actions, strict=True):
        assert json.loads(line.split(" ", 1)[1]) == {**base, **extra.get(action, {})}, line


def test_pull_from_a_closed_port(dockerd: RefDockerd) -> None:
    res = dockerd.docker("pull", "127.0.0.1:9/pydocker-test/no-such-image:1")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        'Error response from daemon: Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused'
    )


def test_restart_policy_left_out_of_the_create_request(dockerd: RefDockerd) -> None:
    """docker-compose sends no RestartPolicy for a service without `restart:`; dockerd shows an
    empty name then (the Docker CLI always sends "no")."""
    api = docker.APIClient(base_url=f"unix://{dockerd.socket}", version="1.41", timeout=60)
    tag = uuid.uuid4().hex[:8]
    try:
        api.create_container("busybox", ["true"], name=f"pdc-rp-api-{tag}")
        dockerd.docker_ok("create", "--name", f"pdc-rp-cli-{tag}", "busybox", "true")
        shown = [
            api.inspect_container(f"pdc-rp-{k}-{tag}")["HostConfig"]["RestartPolicy"] for k in ("api", "cli")
        ]
        assert shown == [{"Name": "", "MaximumRetryCount": 0}, {"Name": "no", "MaximumRetryCount": 0}]
    finally:
        dockerd.docker("rm", "-f", f"pdc-rp-api-{tag}", f"pdc-rp-cli-{tag}")
        api.close()
