"""dockerd/network/rtnl.py: pyroute2's IPRoute, netns and NetlinkError without the package's
__init__ (every netlink family), and the whole package still there for anyone who asks for it.

Each check runs in a fresh interpreter: what a process has imported is the question, and this
test process may have imported pyroute2 whole already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent

BARE = """
import sys
from dockerd.network.rtnl import IPRoute, NetlinkError, netns
# the families the network code never uses are not loaded
loaded = sorted(m for m in ("pyroute2.ndb", "pyroute2.ipdb", "pyroute2.nl80211", "pyroute2.plan9",
                            "pyroute2.netlink.generic.wireguard") if m in sys.modules)
assert not loaded, loaded
with IPRoute() as ipr:  # a read of the test's own namespace: its loopback
    assert ipr.link_lookup(ifname="lo") == [1], ipr.link_lookup(ifname="lo")
assert issubclass(NetlinkError, Exception) and callable(netns.attach)
# Anyone else in the process still gets the whole package, the same classes.
import pyroute2
from pyroute2 import NDB, IPRoute as Whole
from pyroute2.netlink.exceptions import NetlinkError as Same
assert Whole is IPRoute and Same is NetlinkError and NDB.__name__ == "NDB"
assert pyroute2.netns is netns
print("ok")
"""

WHOLE_FIRST = """
import pyroute2
from dockerd.network.rtnl import IPRoute
assert IPRoute is pyroute2.IPRoute
print("ok")
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_bare_package_then_whole() -> None:
    done = run(BARE)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_whole_package_imported_first() -> None:
    done = run(WHOLE_FIRST)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
