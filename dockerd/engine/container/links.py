"""Legacy links (HostConfig.Links, `--link name:alias`) as inspect shows them.

docker-compose sends links with every one-off container (`compose run` links it to the
service's own containers) and for a service's `links:`. The network side (create-time checks,
the target's address in /etc/hosts) is dockerd/engine/network.py's; this module is the view:
dockerd's inspect shows its link graph, each link as "/child:/parent/alias", the child by the
name it has. The record keeps Links as given; a child given by id or prefix shows by its name,
a removed one by the name it was linked by (dockerd's graph keeps a removed child too), a
renamed one by the name it was linked by (where dockerd would show its new name).
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from dockerd.engine.errors import EngineError, InvalidParameter

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.container.state import Container


def parse(link: str) -> tuple[str, str]:
    """(container name, alias) of one link, as dockerd's opts.ParseLink reads it."""
    if link == "":
        raise InvalidParameter("empty string specified for links")
    parts = link.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {link}")
    if len(parts) == 1:
        return link, link
    if parts[0].startswith("/"):  # the "/child:/parent/alias" form inspect shows
        return parts[0][1:], posixpath.basename(parts[1])
    return parts[0], parts[1]


def view(d: Containers, c: Container) -> list[str] | None:
    """HostConfig.Links as inspect shows it: "/child:/parent/alias" for each link."""
    shown = []
    for link in c.host_config.get("Links") or []:
        try:
            name, alias = parse(str(link))
        except EngineError:
            continue
        try:
            name = d.get(name).name
        except EngineError:
            pass
        shown.append(f"/{name}:/{c.name}/{alias}")
    return shown or None
