"""Networks across a crash: kill -9 pydockerd and pycontainerd under running containers on a user
network with a published port. While the daemons are down the port keeps answering (the proxy
and the DNAT rules do not depend on them); the restarted daemon adopts the sandboxes: same
addresses, same ports, names still resolved by the embedded DNS, and IPAM (persisted on disk,
each record with its schema Version) hands no address out twice. Then removal and a daemon stop
leave nothing: no namespace mount, veth, bridge, chain or rule of this daemon, no proxy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from dockerd.network.ports import start_time
from tests.pydockerd_harness import (
    PyDockerd,
    network_leftovers,
    pydockerd_engine,
    start_pydockerd,
    stop_pid,
    until,
    wait_ready,
)


def _kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        until(f"pid {pid} to go", lambda: not os.path.exists(f"/proc/{pid}"))


def _get(port: int) -> str:
    done = subprocess.run(["busybox", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/hostname"],
                          capture_output=True, text=True, timeout=15)  # fmt: skip
    return done.stdout.strip()


def _proxies(d: PyDockerd, names: list[str]) -> list[int]:
    pids = []
    for name in names:
        for entry in (json.loads(d.docker_ok("inspect", "-f", "{{json .Id}}", name)),):
            record = json.loads((d.data_root / "network" / "sandboxes" / f"{entry}.json").read_text())
            assert record["Version"] == 1
            pids += [m["proxy_pid"] for m in record["ports"]]
    return pids


def test_live_restore_keeps_addresses_ports_and_names_then_nothing_remains() -> None:
    with pydockerd_engine() as d:
        d.docker_ok("network", "create", "--subnet", "10.98.20.0/24", "pdn-restore")
        d.docker_ok("run", "-d", "--name", "pdn-web", "--network", "pdn-restore", "-p", "127.0.0.1::80", "busybox",
                    "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
        d.docker_ok(
            "run", "-d", "--name", "pdn-client", "--network", "pdn-restore", "busybox", "sleep", "600"
        )
        before = json.loads(d.docker_ok("inspect", "pdn-web"))[0]["NetworkSettings"]
        port = int(before["Ports"]["80/tcp"][0]["HostPort"])
        hostname = d.docker_ok("inspect", "-f", "{{.Config.Hostname}}", "pdn-web").strip()
        until("the published port", lambda: _get(port) == hostname)
        proxies = _proxies(d, ["pdn-web"])
        ipam = json.loads(next((d.data_root / "network" / "ipam").glob("*.json")).read_text())
        assert ipam["Version"] == 1

        _kill9(d.pid)
        _kill9(int((d.exec_root / "containerd" / "pycontainerd.pid").read_text()))
        assert _get(port) == hostname  # nobody home, and the port still answers

        wait_ready(d, start_pydockerd(d))
        after = json.loads(d.docker_ok("inspect", "pdn-web"))[0]["NetworkSettings"]
        assert after["Networks"]["pdn-restore"]["IPAddress"] == before["Networks"]["pdn-restore"]["IPAddress"]
        assert after["Ports"] == before["Ports"] and _proxies(d, ["pdn-web"]) == proxies
        assert _get(port) == hostname
        web_ip = before["Networks"]["pdn-restore"]["IPAddress"]
        assert (
            d.docker_ok("exec", "pdn-client", "sh", "-c", "ping -c1 -W2 pdn-web >/dev/null && echo ok")
            == "ok\n"
        )
        fresh = d.docker_ok(
            "run", "--rm", "--network", "pdn-restore", "busybox", "ip", "-4", "-o", "addr", "show", "eth0"
        )
        assert f"inet {web_ip}/" not in fresh  # IPAM remembered what it handed out
        taken = d.docker("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert taken.returncode == 125 and "port is already allocated" in taken.stderr

        d.docker_ok("rm", "-f", "pdn-web", "pdn-client")
        assert all(start_time(pid) is None for pid in proxies)  # gone (or a zombie of a subreaper)
        d.docker_ok("network", "rm", "pdn-restore")
        assert stop_pid(d.pid, 40)
        assert network_leftovers(d) == []
        object.__setattr__(d, "pid", 0)  # stopped here: the harness's teardown has nothing to stop


def test_cni_network_across_a_crash_stop_and_start() -> None:
    """A container on a ptp network (the CNI plugin's host-side veth holds the gateway): kept across
    kill -9 of the daemons, DEL when it stops (veth gone), ADD again when it starts, and nothing of it
    after rm and the daemon's stop."""

    def host_end() -> str:
        done = subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "to", "10.98.21.1"], capture_output=True, text=True
        )
        return done.stdout.strip()

    with pydockerd_engine() as d:
        d.docker_ok("network", "create", "-d", "ptp", "--subnet", "10.98.21.0/24", "pdn-ptp")
        d.docker_ok("run", "-d", "--name", "pdn-p", "--network", "pdn-ptp", "busybox", "sleep", "600")
        assert host_end() and "10.98.21.2/24" in d.docker_ok("exec", "pdn-p", "ip", "-4", "-o", "addr")
        _kill9(d.pid)
        _kill9(int((d.exec_root / "containerd" / "pycontainerd.pid").read_text()))
        wait_ready(d, start_pydockerd(d))
        assert (
            d.docker_ok("exec", "pdn-p", "sh", "-c", "ping -c1 -W2 10.98.21.1 >/dev/null && echo ok")
            == "ok\n"
        )
        d.docker_ok("stop", "-t", "1", "pdn-p")
        until("the plugin's DEL", lambda: host_end() == "")
        d.docker_ok("start", "pdn-p")
        assert host_end() and "10.98.21.2/24" in d.docker_ok("exec", "pdn-p", "ip", "-4", "-o", "addr")
        d.docker_ok("rm", "-f", "pdn-p")
        assert host_end() == ""
        d.docker_ok("network", "rm", "pdn-ptp")
        assert stop_pid(d.pid, 40)
        assert network_leftovers(d) == []
        object.__setattr__(d, "pid", 0)


def test_daemon_json_bip_and_address_pools(tmp_path: Path) -> None:
    """daemon.json `bip` sets the default bridge's address and subnet, `default-address-pools`
    where user networks' subnets come from; both as dockerd reads them."""
    config = tmp_path / "daemon.json"
    config.write_text(
        json.dumps({"bip": "10.98.40.1/24", "default-address-pools": [{"base": "10.98.48.0/21", "size": 26}]})
    )
    with pydockerd_engine(extra_args=["--config-file", str(config)]) as d:
        bridge = json.loads(d.docker_ok("network", "inspect", "bridge"))[0]
        assert bridge["IPAM"]["Config"] == [{"Subnet": "10.98.40.0/24", "Gateway": "10.98.40.1"}]
        assert (
            d.docker_ok("run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0").split()[3]
            == "10.98.40.2/24"
        )
        d.docker_ok("network", "create", "pdn-pool-a")
        d.docker_ok("network", "create", "pdn-pool-b")
        subnets = [
            json.loads(d.docker_ok("network", "inspect", n))[0]["IPAM"]["Config"][0]["Subnet"]
            for n in ("pdn-pool-a", "pdn-pool-b")
        ]
        assert subnets == ["10.98.48.0/26", "10.98.48.64/26"]
        d.docker_ok("network", "rm", "pdn-pool-a", "pdn-pool-b")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"default-address-pools": ["10.0.0.0/8"]}))
    done = subprocess.run([str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pydockerd"), "--config-file", str(bad),
                           "--data-root", str(tmp_path / "d"), "--exec-root", str(tmp_path / "e"), "-H", f"unix://{tmp_path}/s"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "default-address-pools" in done.stderr
