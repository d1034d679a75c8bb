"""The daemon's unary calls made in-process, for the CRI plugin's client.

containerd's CRI plugin calls containerd's services in-process (its client built on the local
services); this plugin keeps containerd.client, but under it a LocalChannel hands each unary call
straight to the servicer method the daemon registered for it, in the caller's thread: the same
request and response bytes (each message is serialized and parsed as on the wire, so neither side
shares a message object with the other), the same metadata (namespace, lease), the same status
code and message on failure. A call over the socket cost ~0.9 ms of CPU (client and server, both
in this process) and four thread hand-offs, each a wait for a core on a loaded machine; a pod's
start and teardown make ~25 of them. Streaming calls (event subscriptions, content reads and
writes) keep going over the socket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc

Metadata = Sequence[tuple[str, str | bytes]]
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


class _Collector:
    """Stands in for a grpc.Server while the generated add_*Servicer_to_server functions run."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        pass  # the same methods come again, by name, below

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        for name, handler in handlers.items():
            self.handlers[f"/{service}/{name}"] = handler


def unary_handlers(
    services: Iterable[tuple[Callable[[Any, Any], None], Any]],
) -> dict[str, Handler]:
    """The unary-unary method handlers of SERVICES ((add_*_to_server, servicer) pairs), by path."""
    collector = _Collector()
    for add, servicer in services:
        add(servicer, collector)
    return {path: h for path, h in collector.handlers.items() if h.unary_unary is not None}


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class _Context:
    """The parts of grpc.ServicerContext the daemon's services use, for one in-process call."""

    def __init__(self, metadata: Metadata | None) -> None:
        self._metadata = tuple(metadata or ())
        self._callbacks: list[Callable[[], None]] = []
        self.code = grpc.StatusCode.OK
        self.details = ""

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None

    def add_callback(self, callback: Callable[[], None]) -> bool:
        self._callbacks.append(callback)
        return True

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Abort(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def peer(self) -> str:
        return "local"

    def done(self) -> None:
        for callback in self._callbacks:
            callback()


class LocalRpcError(grpc.RpcError, grpc.Call):
    """A failed in-process call, with the face of grpc's own failed call (code, details; result()
    raises it, as the client interceptors expect of a failed call's outcome)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> Any:
        return ()

    def trailing_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False

    def result(self, timeout: float | None = None) -> Any:
        raise self


class _Done:
    """The call object of a successful in-process call (with_call's second value)."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    def details(self) -> str:
        return ""

    def initial_metadata(self) -> Metadata:
        return ()

    def trailing_metadata(self) -> Metadata:
        return ()


class _LocalUnary:
    def __init__(
        self,
        handler: Handler,
        serialize: Callable[[Any], bytes] | None,
        deserialize: Callable[[bytes], Any] | None,
    ) -> None:
        self._handler = handler
        self._serialize = serialize
        self._deserialize = deserialize

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: Metadata | None = None, **_: Any
    ) -> Any:
        return self.with_call(request, timeout, metadata)[0]

    def with_call(
        self, request: Any, timeout: float | None = None, metadata: Metadata | None = None, **_: Any
    ) -> tuple[Any, Any]:
        h, behaviour = self._handler, self._handler.unary_unary
        assert behaviour is not None  # unary_handlers() keeps no other kind
        if self._serialize is not None and h.request_deserializer is not None:
            request = h.request_deserializer(self._serialize(request))
        context = _Context(metadata)
        try:
            response = behaviour(request, cast(grpc.ServicerContext, context))
        except _Abort as exc:
            raise LocalRpcError(exc.code, exc.details) from None
        except Exception as exc:  # noqa: BLE001 - answered as grpc's server answers one it did not expect
            raise LocalRpcError(grpc.StatusCode.UNKNOWN, f"Exception calling application: {exc}") from None
        finally:
            context.done()
        if context.code != grpc.StatusCode.OK:
            raise LocalRpcError(context.code, context.details)
        if h.response_serializer is not None and self._deserialize is not None:
            response = self._deserialize(h.response_serializer(response))
        return response, _Done()

    def future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("in-process calls are synchronous")


class LocalChannel:
    """Unary calls of HANDLERS in-process; every other call over FALLBACK, the daemon's socket
    (a grpc.Channel in all but name: the client's interceptors and stubs take it as one)."""

    def __init__(self, handlers: dict[str, Handler], fallback: grpc.Channel) -> None:
        self._handlers = handlers
        self._fallback: Any = fallback  # its methods take the generated stubs' extra argument

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool = False,
    ) -> Any:
        handler = self._handlers.get(method)
        if handler is None:
            return self._fallback.unary_unary(
                method, request_serializer, response_deserializer, _registered_method
            )
        return _LocalUnary(handler, request_serializer, response_deserializer)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._fallback.unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._fallback.stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._fallback.stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self._fallback.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self._fallback.unsubscribe(callback)

    def close(self) -> None:
        self._fallback.close()

    def __enter__(self) -> LocalChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
