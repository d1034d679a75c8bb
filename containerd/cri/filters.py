"""What a CRI list filter selects, one rule for the four List calls that take one (containers,
sandboxes and their stats), as containerd's CRI plugin applies them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def selects(
    flt: Any,
    object_id: str,
    labels: Mapping[str, str],
    sandbox_id: str | None = None,
    state: int | None = None,
) -> bool:
    """Whether `flt` selects an object: ids by prefix (crictl passes short ids), the state when
    the filter sets one, every label-selector pair. `sandbox_id` and `state` are given only for
    filters that have those fields."""
    if flt.id and not object_id.startswith(flt.id):
        return False
    if sandbox_id is not None and flt.pod_sandbox_id and not sandbox_id.startswith(flt.pod_sandbox_id):
        return False
    if state is not None and flt.HasField("state") and flt.state.state != state:
        return False
    return all(labels.get(k) == v for k, v in flt.label_selector.items())
