"""The engine's networking over a real backend: the builder's RUN hook (a sandbox on the default
bridge or a named network, the spec's namespace and files, everything released at close)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockerd.engine.network import Networking
from dockerd.network.backend import NetworkBackend
from tests.network.conftest import in_ns


def _networking(backend: NetworkBackend) -> Networking:
    def nothing(ref: str) -> Any:
        raise AssertionError("no container records here")

    return Networking(backend, nothing, list, lambda cid: "", lambda c: None)


def _spec(tmp: Path) -> dict[str, Any]:
    for name in ("hosts", "resolv.conf"):
        (tmp / name).write_text("")
    mounts = [
        {"destination": f"/etc/{n}", "type": "bind", "source": str(tmp / n), "options": ["rbind"]}
        for n in ("hosts", "resolv.conf")
    ]
    return {
        "hostname": "builder1",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]},
    }


def test_build_hook_attaches_run_containers_and_releases_them(
    backend: NetworkBackend, tmp_path: Path
) -> None:
    hook = _networking(backend).build_hook()
    spec = _spec(tmp_path)
    attached = hook.attach("b" * 64, "default", spec)
    key = backend.sandboxes.key("b" * 64)
    assert spec["linux"]["namespaces"] == [{"type": "pid"}, {"type": "network", "path": key}]
    gateway = backend.networks.default_bridge().subnets[0].gateway
    assert f"default via {gateway} dev eth0" in in_ns(key, "ip", "route").stdout
    assert (tmp_path / "hosts").read_text().splitlines()[-1].endswith("\tbuilder1")
    assert "nameserver" in (tmp_path / "resolv.conf").read_text()
    attached.close()
    assert "b" * 64 not in backend.sandboxes.by_id and not Path(key).exists()
    # a user network: the embedded DNS in resolv.conf
    backend.networks.create("buildnet")
    spec = _spec(tmp_path)
    attached = hook.attach("c" * 64, "buildnet", spec)
    assert "nameserver 127.0.0.11" in (tmp_path / "resolv.conf").read_text()
    attached.close()
