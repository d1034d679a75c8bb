"""The part of pyroute2 the network code uses (IPRoute, netns, NetlinkError), without the rest.

`import pyroute2.iproute.linux` runs the package's __init__ first, and that imports every
netlink family pyroute2 has (IPDB, NDB, nl80211, wireguard, ipvs, plan9, devlink...), 230
modules and 13 MiB resident, unittest and multiprocessing among them, for a daemon that sends
rtnetlink link, address and route requests. This module registers the package bare (found by
the import system, its __init__ not run) before importing the three submodules, which import
what they need themselves: 6 MiB less, measured (docs/BENCHMARKS.md). Anyone in the process
who asks the package for a name it does not have then gets the whole package, as before: its
__init__ runs on the first such lookup (module __getattr__), so nothing else is affected.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

PACKAGE = "pyroute2"


def _bare_package() -> None:
    if PACKAGE in sys.modules:
        return  # already imported (whole or bare): nothing to save
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not installed as a package: the imports below fail as they would have
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def lookup(name: str) -> Any:
        """A submodule is imported (`from pyroute2 import config`, as the submodules do); any
        other name the bare package lacks runs the real __init__ in it first."""
        if importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
            return importlib.import_module(f"{PACKAGE}.{name}")
        del package.__getattr__  # no recursion while __init__ runs
        loader.exec_module(package)
        return ModuleType.__getattribute__(package, name)

    package.__getattr__ = lookup  # type: ignore[method-assign]
    sys.modules[PACKAGE] = package


if TYPE_CHECKING:
    from pyroute2 import IPRoute, netns
    from pyroute2.netlink.exceptions import NetlinkError
else:
    _bare_package()
    from pyroute2 import netns
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["IPRoute", "NetlinkError", "netns"]
