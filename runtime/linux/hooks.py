"""OCI hooks: programs run at lifecycle points with the container state on stdin."""

from __future__ import annotations

from common import fastjson
from runtime.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run(hooks: dict[str, Any] | None, stage: str, state: dict[str, Any]) -> None:
    """Run the hooks of STAGE in order; the first failure raises and the rest are not run.

    For the stages whose failure fails the operation: prestart, createRuntime, createContainer,
    startContainer."""
    for hook in (hooks or {}).get(stage) or []:
        _run_one(hook, stage, state)


def run_all(hooks: dict[str, Any] | None, stage: str, state: dict[str, Any]) -> list[str]:
    """Run every hook of STAGE, whatever the earlier ones did; the failures' messages.

    For poststart and poststop, where the spec wants a warning and the lifecycle to go on."""
    failures = []
    for hook in (hooks or {}).get(stage) or []:
        try:
            _run_one(hook, stage, state)
        except PyruncError as exc:
            failures.append(str(exc))
    return failures


def _run_one(hook: dict[str, Any], stage: str, state: dict[str, Any]) -> None:
    import subprocess

    args = hook.get("args") or [hook["path"]]
    env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
    timeout = hook.get("timeout")
    if timeout is not None and timeout <= 0:
        raise PyruncError(f"{stage} hook {hook['path']}: timeout must be positive")
    try:
        done = subprocess.run(
            args,
            executable=hook["path"],
            input=fastjson.dumps(state).encode(),
            env=env,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise PyruncError(f"{stage} hook {hook['path']} timed out after {timeout}s") from None
    except OSError as exc:
        raise PyruncError(f"{stage} hook {hook['path']}: {exc.strerror}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        reason = f": {detail[-1]}" if detail else ""
        raise PyruncError(f"{stage} hook {hook['path']} exited with status {done.returncode}{reason}")
