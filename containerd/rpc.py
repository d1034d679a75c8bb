"""What every gRPC service of pycontainerd shares: the namespace header and error mapping.

Stores raise containerd.errors kinds; `handler` turns them into the matching gRPC status
once, here. Anything else is a bug: it is logged with its traceback and the client gets
INTERNAL with a one-line message, and the daemon carries on.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from containerd.errors import ContainerdError, FailedPrecondition, InvalidArgument

NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"
# containerd's identifiers rule: alphanumerics separated by single '.', '_' or '-', at most 76 chars.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")

log = logging.getLogger("pycontainerd.rpc")

F = TypeVar("F", bound=Callable[..., Any])


def validate_identifier(kind: str, value: str) -> str:
    if not value:
        raise InvalidArgument(f"{kind} must not be empty")
    if len(value) > 76 or not _IDENTIFIER.match(value):
        raise InvalidArgument(f"{kind} {value!r} is not a valid identifier")
    return value


def namespace_of(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == NAMESPACE_HEADER and value:
            return validate_identifier("namespace", str(value))
    raise FailedPrecondition("namespace is required: set the containerd-namespace header")


def lease_of(context: grpc.ServicerContext) -> str:
    """The client's lease, if it sent one: resources it creates are then held by that lease."""
    for key, value in context.invocation_metadata() or ():
        if key == LEASE_HEADER and value:
            return str(value)
    return ""


def _abort(context: grpc.ServicerContext, exc: BaseException, what: str) -> None:
    if isinstance(exc, ContainerdError):
        context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
    log.exception("unexpected error in %s", what)
    context.abort(grpc.StatusCode.INTERNAL, f"{what}: internal error: {exc.__class__.__name__}: {exc}")


def handler(func: F) -> F:
    """Wrap a servicer method (unary or server-streaming) with the error mapping."""
    what = func.__qualname__
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from func(self, request, context)
            except Exception as exc:  # noqa: BLE001 - mapped, logged, never fatal to the daemon
                _abort(context, exc, what)

        return stream  # type: ignore[return-value]

    @functools.wraps(func)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return func(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc, what)

    return unary  # type: ignore[return-value]


def timestamp(ns: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def from_timestamp(ts: timestamp_pb2.Timestamp) -> int:
    return int(ts.ToNanoseconds())
