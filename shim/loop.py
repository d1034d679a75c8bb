"""The shim's single-threaded event loop: epoll over every fd it owns, plus timers.

One thread keeps the shim small and its state free of locks: sockets, container pipes,
FIFOs, the pty master and the signal wake-up pipe all come back through one epoll. A
callback gets the epoll event mask; an exception in one is reported on stderr (the
shim's log) and never stops the loop.
"""

from __future__ import annotations

import os
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

IN = select.EPOLLIN
OUT = select.EPOLLOUT
ERR = select.EPOLLERR | select.EPOLLHUP


def log(message: str) -> None:
    """One line on the shim's stderr, which `start` points at shim.log in the state directory."""
    try:
        os.write(
            2, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pycontainerd-shim[{os.getpid()}]: {message}\n".encode()
        )
    except OSError:
        pass


def log_exception(what: str) -> None:
    import traceback  # only on the failure path: it is a heavy import

    log(f"{what}: {sys.exc_info()[1]!r}\n{traceback.format_exc()}")


class Timer:
    __slots__ = ("deadline", "callback")

    def __init__(self, deadline: float, callback: Callable[[], None] | None) -> None:
        self.deadline = deadline
        self.callback = callback

    def cancel(self) -> None:
        self.callback = None


class Loop:
    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.masks: dict[int, int] = {}
        self.timers: list[Timer] = []
        self.running = True

    def watch(self, fd: int, mask: int, handler: Callable[[int], None]) -> None:
        if fd in self.handlers:
            self.epoll.modify(fd, mask)
        else:
            self.epoll.register(fd, mask)
        self.handlers[fd] = handler
        self.masks[fd] = mask

    def set_mask(self, fd: int, mask: int) -> None:
        if fd in self.handlers and self.masks[fd] != mask:
            self.epoll.modify(fd, mask)
            self.masks[fd] = mask

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            del self.masks[fd]
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        self.timers.append(timer)
        return timer

    def stop(self) -> None:
        self.running = False

    def _timeout(self) -> float:
        self.timers = [t for t in self.timers if t.callback is not None]
        if not self.timers:
            return -1
        return max(0.0, min(t.deadline for t in self.timers) - time.monotonic())

    def run(self) -> None:
        while self.running:
            for fd, mask in self.epoll.poll(self._timeout()):
                handler = self.handlers.get(fd)
                if handler is None:
                    continue
                try:
                    handler(mask)
                except Exception:  # noqa: BLE001 - logged; one handler's bug must not stop the shim's loop
                    log_exception(f"handling fd {fd}")
            now = time.monotonic()
            for timer in [t for t in self.timers if t.callback is not None and t.deadline <= now]:
                callback, timer.callback = timer.callback, None
                try:
                    callback()  # type: ignore[misc]
                except Exception:  # noqa: BLE001 - logged; one timer's bug must not stop the shim's loop
                    log_exception("running a timer")
