"""The content service through the generated stubs: resumable writes (also after a client
cancels mid-stream), verification on commit, namespaced visibility."""

from __future__ import annotations

import hashlib
import queue
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.daemon.conftest import RunningDaemon


def requests(*messages: Any) -> Iterator[Any]:
    yield from messages


def test_cancelled_write_resumes_and_commits(daemon: RunningDaemon) -> None:
    from protos.gen.containerd_api.services.content.v1 import content_pb2, content_pb2_grpc

    stub = content_pb2_grpc.ContentStub(daemon.channel("ns1"))
    data = b"x" * 300_000 + b"end"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    outgoing: queue.Queue[Any] = queue.Queue()
    call = stub.Write(iter(outgoing.get, None))
    outgoing.put(
        content_pb2.WriteContentRequest(
            action=content_pb2.WRITE, ref="r1", total=len(data), expected=digest, data=data[:100_000]
        )
    )
    assert next(call).offset == 100_000
    outgoing.put(
        content_pb2.WriteContentRequest(
            action=content_pb2.WRITE, ref="r1", offset=100_000, data=data[100_000:200_000]
        )
    )
    assert next(call).offset == 200_000
    call.cancel()  # the client goes away mid-upload
    time.sleep(0.5)
    status = stub.Status(content_pb2.StatusRequest(ref="r1")).status
    assert status.offset == 200_000
    deadline = time.monotonic() + 10
    while True:  # the cancelled writer may still hold the ref for a moment: retry, as clients do
        try:
            offset = next(
                iter(stub.Write(requests(content_pb2.WriteContentRequest(action=content_pb2.STAT, ref="r1"))))
            ).offset
            break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert offset == status.offset
    done = list(
        stub.Write(
            requests(
                content_pb2.WriteContentRequest(
                    action=content_pb2.WRITE, ref="r1", offset=offset, data=data[offset:]
                ),
                content_pb2.WriteContentRequest(
                    action=content_pb2.COMMIT, ref="r1", total=len(data), expected=digest
                ),
            )
        )
    )
    assert done[-1].digest == digest
    read = b"".join(r.data for r in stub.Read(content_pb2.ReadContentRequest(digest=digest)))
    assert read == data
    assert stub.Info(content_pb2.InfoRequest(digest=digest)).info.size == len(data)
    other = content_pb2_grpc.ContentStub(daemon.channel("ns2"))
    with pytest.raises(grpc.RpcError) as err:
        other.Info(content_pb2.InfoRequest(digest=digest))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_wrong_digest_or_size_keeps_nothing(daemon: RunningDaemon) -> None:
    from protos.gen.containerd_api.services.content.v1 import content_pb2, content_pb2_grpc

    stub = content_pb2_grpc.ContentStub(daemon.channel("ns1"))
    wrong = "sha256:" + "0" * 64
    for total, expected, code in (
        (5, wrong, grpc.StatusCode.FAILED_PRECONDITION),
        (9, "", grpc.StatusCode.FAILED_PRECONDITION),
        (5, "sha256:../../etc", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as err:
            list(
                stub.Write(
                    requests(
                        content_pb2.WriteContentRequest(action=content_pb2.WRITE, ref="bad", data=b"hello"),
                        content_pb2.WriteContentRequest(
                            action=content_pb2.COMMIT, ref="bad", total=total, expected=expected
                        ),
                    )
                )
            )
        assert err.value.code() == code, err.value.details()
    assert [i for r in stub.List(content_pb2.ListContentRequest()) for i in r.info] == []
    assert list((daemon.root / "content" / "blobs" / "sha256").iterdir()) == []
    with pytest.raises(grpc.RpcError) as err:
        stub.Info(content_pb2.InfoRequest(digest="sha256:../../../etc/passwd"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert daemon.alive()
