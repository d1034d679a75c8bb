"""ContainerStats, ListContainerStats, PodSandboxStats from the tasks' cgroup metrics (v1).

As containerd's CRI: cumulative CPU time, the memory working set (usage minus inactive file
pages), RSS, page faults; the writable layer's usage from the snapshotter; a pod's figures are
its pause container's cgroup plus its containers, with the pod's network interfaces read from
the pod's namespace.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING, Any

from containerd.client.errors import ContainerdError as ClientError
from protos.gen.cri_api.runtime.v1 import api_pb2 as cri

if TYPE_CHECKING:
    from containerd.cri.plugin import Plugin


def _u64(value: int) -> cri.UInt64Value:
    return cri.UInt64Value(value=max(0, int(value)))


def _metrics(p: Plugin, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    try:
        found = p.client.tasks.metrics(*[f"id=={i}" for i in ids])
    except ClientError:
        return {}
    return {m.container_id: (m.timestamp, m.cgroups_v1()) for m in found}


def _cpu_memory(ts: int, metrics: Any) -> tuple[cri.CpuUsage, cri.MemoryUsage]:
    cpu = cri.CpuUsage(timestamp=ts, usage_core_nano_seconds=_u64(metrics.cpu.usage.total if metrics else 0))
    mem = metrics.memory if metrics else None
    usage = mem.usage.usage if mem else 0
    inactive = mem.total_inactive_file if mem else 0
    memory = cri.MemoryUsage(
        timestamp=ts, working_set_bytes=_u64(usage - inactive if usage > inactive else 0), usage_bytes=_u64(usage),
        rss_bytes=_u64(mem.total_rss if mem else 0), page_faults=_u64(mem.total_pg_fault if mem else 0),
        major_page_faults=_u64(mem.total_pg_maj_fault if mem else 0),
    )  # fmt: skip
    if mem and mem.usage.limit and mem.usage.limit < (1 << 62):
        memory.available_bytes.CopyFrom(_u64(mem.usage.limit - memory.working_set_bytes.value))
    return cpu, memory


def container_stats(
    p: Plugin, items: list[Any], metrics: dict[str, Any] | None = None
) -> list[cri.ContainerStats]:
    metrics = metrics if metrics is not None else _metrics(p, [i.meta.id for i in items])
    out = []
    snaps = p.client.snapshots(p.cfg.snapshotter)
    for item in items:
        config = p.ctrs.config(item)
        stats = cri.ContainerStats(
            attributes=cri.ContainerAttributes(id=item.meta.id, metadata=config.metadata, labels=config.labels, annotations=config.annotations),
        )  # fmt: skip
        if (
            item.meta.id in metrics
        ):  # a container without a task (created, exited) has no CPU or memory figures, as containerd's
            ts, m = metrics[item.meta.id]
            cpu, memory = _cpu_memory(ts or time.time_ns(), m)
            stats.cpu.CopyFrom(cpu)
            stats.memory.CopyFrom(memory)
        try:
            usage = snaps.usage(item.meta.id)
            stats.writable_layer.CopyFrom(
                cri.FilesystemUsage(
                    timestamp=time.time_ns(),
                    fs_id=cri.FilesystemIdentifier(
                        mountpoint=os.path.join(p.daemon_cfg.root, "snapshots", p.cfg.snapshotter)
                    ),
                    used_bytes=_u64(usage.size),
                    inodes_used=_u64(usage.inodes),
                )  # fmt: skip
            )
        except ClientError:
            pass
        out.append(stats)
    return out


def _network(netns: str) -> cri.NetworkUsage | None:
    if not netns:
        return None
    done = subprocess.run(
        ["nsenter", f"--net={netns}", "cat", "/proc/net/dev"], capture_output=True, text=True, timeout=10
    )
    if done.returncode != 0:
        return None
    usage = cri.NetworkUsage(timestamp=time.time_ns())
    for line in done.stdout.splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) < 16 or name.strip() == "lo":
            continue
        iface = cri.NetworkInterfaceUsage(
            name=name.strip(), rx_bytes=_u64(int(fields[0])), rx_errors=_u64(int(fields[2])),
            tx_bytes=_u64(int(fields[8])), tx_errors=_u64(int(fields[10])),
        )  # fmt: skip
        if name.strip() == "eth0":
            usage.default_interface.CopyFrom(iface)
        else:
            usage.interfaces.append(iface)
    return usage


def sandbox_stats(p: Plugin, sandbox: Any) -> cri.PodSandboxStats:
    config = p.pods.config(sandbox)
    members = [c for c in p.containers.list() if c.meta.sandbox_id == sandbox.meta.id]
    metrics = _metrics(p, [sandbox.meta.id, *(c.meta.id for c in members)])
    containers = container_stats(p, members, metrics)
    ts = time.time_ns()
    total_cpu = sum((m.cpu.usage.total for _, m in metrics.values() if m), 0)
    working = sum(c.memory.working_set_bytes.value for c in containers)
    pause = metrics.get(sandbox.meta.id, (ts, None))[1]
    if pause is not None:
        _, pm = _cpu_memory(ts, pause)
        working += pm.working_set_bytes.value
    stats = cri.PodSandboxStats(
        attributes=cri.PodSandboxAttributes(
            id=sandbox.meta.id, metadata=config.metadata, labels=config.labels, annotations=config.annotations
        )
    )
    linux = stats.linux
    linux.cpu.CopyFrom(cri.CpuUsage(timestamp=ts, usage_core_nano_seconds=_u64(total_cpu)))
    linux.memory.CopyFrom(cri.MemoryUsage(timestamp=ts, working_set_bytes=_u64(working)))
    pids = sum((m.pids.current for _, m in metrics.values() if m), 0)
    linux.process.CopyFrom(cri.ProcessUsage(timestamp=ts, process_count=_u64(pids)))
    network = _network(sandbox.meta.netns) if p.pods.state(sandbox) == cri.SANDBOX_READY else None
    if network is not None:
        linux.network.CopyFrom(network)
    linux.containers.extend(containers)
    return stats
