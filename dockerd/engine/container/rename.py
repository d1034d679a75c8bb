"""POST /containers/{id}/rename."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockerd.engine.container import names
from dockerd.engine.errors import Conflict, InvalidParameter

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def rename(d: Containers, ref: str, new_name: str) -> None:
    """POST /containers/{id}/rename."""
    if not new_name.strip("/"):
        raise InvalidParameter("Neither old nor new names may be empty")
    c = d.get(ref)
    new_name = names.validate_name(new_name)
    with d.store.lock:
        if d.store.owner_of(new_name, other_than=c.id) is not None:
            raise Conflict(f'Conflict. The container name "/{new_name}" is already in use')
        old = c.name
        c.name = new_name
        d.store.save(c)
    d.networking.renamed(c)  # the embedded DNS answers to the new name
    d.publish("container", "rename", c.id, {"oldName": f"/{old}", "name": new_name})
