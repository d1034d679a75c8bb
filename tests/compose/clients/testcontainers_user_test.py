"""A user's own integration test written with testcontainers (PyPI), run by
tests/compose/test_python_clients.py inside the engine's network namespace, with DOCKER_HOST
on the engine's socket and Ryuk (the reaper, an image from Docker Hub) off.

A busybox httpd with a published port: started, waited for by its log line, fetched through
the port testcontainers maps, stopped and removed. Prints one line per step; exits non-zero
(with a traceback) on any failure."""

from __future__ import annotations

import urllib.request

from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs

SCRIPT = "mkdir -p /www && echo hello from testcontainers > /www/index.html && echo serving now && exec httpd -f -p 8080 -h /www"


def main() -> None:
    container = DockerContainer("busybox").with_command(["sh", "-c", SCRIPT]).with_exposed_ports(8080)
    with container:
        waited = wait_for_logs(container, "serving now", timeout=60, interval=0.2)
        print(f"log line seen after {waited:.1f}s")
        host, port = container.get_container_host_ip(), container.get_exposed_port(8080)
        body = urllib.request.urlopen(f"http://{host}:{port}/", timeout=10).read().decode()
        print(f"GET http://{host}:{port}/ -> {body.strip()}")
        assert body == "hello from testcontainers\n", body
        cid = container.get_wrapped_container().id
    client = container.get_docker_client().client
    assert not client.containers.list(all=True, filters={"id": cid}), "the container outlived the with block"
    print("container removed")


if __name__ == "__main__":
    main()
