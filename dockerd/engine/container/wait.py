"""POST /containers/{id}/wait: the conditions of Docker's wait, as predicates the API polls
without holding a thread (it is woken by the store's watchers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockerd.engine.errors import InvalidParameter

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def wait_condition(
    d: Containers, ref: str, condition: str
) -> tuple[Callable[[], bool], Callable[[], dict[str, Any]]]:
    """Docker's wait: a predicate that holds once `condition` is met, and the answer then.

    As dockerd's State.Wait: `not-running` holds at once for a container that is neither
    running nor restarting, else at its next stop; `next-exit` at its next stop (a restart
    policy starting it again does not matter: the first stop ends the wait); `removed` only
    at removal; and every condition holds once the container is removed.
    """
    c = d.get(ref)
    if condition not in ("not-running", "next-exit", "removed", ""):
        raise InvalidParameter(f"invalid condition: {condition!r}")
    with d.store.lock:
        stops = d.store.stop_count(c.id)
        already = condition in ("not-running", "") and not c.running() and not c.state.get("Restarting")

    def removed() -> bool:
        return c.id not in d.store

    def stopped() -> bool:
        return d.store.stop_count(c.id) > stops

    def done() -> bool:
        if condition == "removed":
            return removed()
        return already or removed() or stopped()

    def result() -> dict[str, Any]:
        with d.store.lock:
            stop = d.store.stops.get(c.id)
            if stopped() and stop is not None:  # that stop's status, even if a restart followed
                return _wait_answer(stop.exit_code, stop.error)
            # A removed container's last error is not reported (dockerd's removal clears it).
            error = "" if removed() else str(c.state.get("Error") or "")
            return _wait_answer(int(c.state.get("ExitCode", 0)), error)

    return done, result


def _wait_answer(code: int, error: str) -> dict[str, Any]:
    return {"Error": {"Message": error} if error else None, "StatusCode": code}
