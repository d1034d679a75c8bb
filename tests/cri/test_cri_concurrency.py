"""The CRI plugin's own calls into the daemon never wait behind the calls that hold its workers.

pycontainerd serves the CRI on the daemon's socket, whose gRPC server has a pool of workers; each
CRI call holds one while it makes its own calls into the daemon (containers, snapshots, tasks).
Those are made in-process (containerd/cri/local.py): when they went over the socket with 32
workers, 30 pods started at once held 30 and every nested call queued for the last two (31 at
once, and the pods never started). Long-lived calls hold workers too: here 30 event
subscriptions do, as a pydockerd or `ctr events` would, and a pull and a pod must still work.
The same test body runs against containerd 1.6, which has no such pool.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from protos.gen.containerd_api.services.events.v1 import events_pb2, events_pb2_grpc
from tests.cri.harness import Engine

SUBSCRIBERS = 30


def test_pod_starts_while_subscriptions_hold_the_workers(engine: Engine, tmp_path: Path) -> None:
    channel = grpc.insecure_channel(f"unix://{engine.address}")
    events = events_pb2_grpc.EventsStub(channel)
    streams = [events.Subscribe(events_pb2.SubscribeRequest()) for _ in range(SUBSCRIBERS)]
    try:
        # the pull's events reach every subscriber: each subscription is live, holding a worker
        engine.crictl("pull", engine.image(), timeout=90)
        with ThreadPoolExecutor(SUBSCRIBERS) as pool:
            firsts = list(pool.map(lambda s: next(s), streams, timeout=60))
        assert all(e.topic for e in firsts)
        pod = engine.crictl("runp", str(engine.pod_config(tmp_path / "pod.json")), timeout=90).stdout.strip()
        ctr_json = engine.container_config(tmp_path / "c.json", command=["sleep", "1000"])
        pod_json = tmp_path / "pod.json"
        cid = engine.crictl("create", pod, str(ctr_json), str(pod_json), timeout=90).stdout.strip()
        engine.crictl("start", cid, timeout=90)
        assert engine.json("inspect", cid)["status"]["state"] == "CONTAINER_RUNNING"
        engine.crictl("stopp", pod, timeout=90)
        engine.crictl("rmp", pod, timeout=90)
    finally:
        for s in streams:
            s.cancel()
        channel.close()
