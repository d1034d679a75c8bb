"""Bringing the loopback interface up in a new network namespace, as runc does.

A network namespace is born with `lo` down, so even 127.0.0.1 is unreachable in it.
runc brings it up in every network namespace it creates (its "loopback" network
strategy, one RTM_NEWLINK through netlink); so does pyrunc, in the init, before the
root switch.

One rtnetlink request written by hand rather than pyroute2: pyrunc is exec'd for every
step of every container and its start path stays import-light (pyroute2 costs more than a
whole container start). The request is the one `ip link set lo up` sends: RTM_NEWLINK
naming the link by IFLA_IFNAME with IFF_UP in both flags and change mask, acknowledged.
Only C modules are imported (`_socket`, `_struct`), and the init loads this module only when
it makes a new network namespace.
"""

from __future__ import annotations

# C modules, loaded with this module (before the init enters a user namespace, where the
# mapped root may not be able to read the host's library any more).
import _socket
import _struct
import os

_NETLINK_ROUTE = 0
_RTM_NEWLINK = 16
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_IFLA_IFNAME = 3
_IFF_UP = 0x1
_AF_UNSPEC = 0


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    padding = b"\0" * (-length % 4)
    return _struct.pack("=HH", length, kind) + payload + padding


def link_up(name: str) -> None:
    """Set IFF_UP on the link NAME of the calling thread's network namespace; OSError on refusal."""
    # struct ifinfomsg: family, pad, type, index (0: by name), flags, change mask
    body = _struct.pack("=BxHiII", _AF_UNSPEC, 0, 0, _IFF_UP, _IFF_UP) + _attr(
        _IFLA_IFNAME, name.encode() + b"\0"
    )
    header = _struct.pack("=IHHII", 16 + len(body), _RTM_NEWLINK, _NLM_F_REQUEST | _NLM_F_ACK, 1, 0)
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, _NETLINK_ROUTE)
    try:
        sock.sendto(header + body, (0, 0))
        reply = sock.recv(4096)
    finally:
        sock.close()
    # The acknowledgement is an NLMSG_ERROR whose error field is 0 (or -errno on failure).
    _length, kind, _flags, _seq, _pid = _struct.unpack_from("=IHHII", reply, 0)
    if kind != _NLMSG_ERROR:
        raise OSError(0, f"unexpected netlink reply type {kind} to RTM_NEWLINK")
    (error,) = _struct.unpack_from("=i", reply, 16)
    if error:
        raise OSError(-error, os.strerror(-error))


def loopback_up() -> None:
    link_up("lo")
