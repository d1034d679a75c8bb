"""The network backend's error kinds, each with the HTTP status dockerd answers with.

The engine renders them as `{"message": str(error)}` with `error.status`; the wording of
every message is libnetwork's (the reference dockerd's), built by the helpers below so each
sentence is written once.
"""

from __future__ import annotations


class NetworkError(Exception):
    status = 500


class InvalidParameter(NetworkError):
    status = 400


class Forbidden(NetworkError):
    status = 403


class NotFound(NetworkError):
    status = 404


class Conflict(NetworkError):
    status = 409


def network_not_found(ref: str) -> NotFound:
    return NotFound(f"network {ref} not found")


def name_taken(name: str) -> Conflict:
    return Conflict(f"network with name {name} already exists")


def active_endpoints(name: str, network_id: str) -> Forbidden:
    return Forbidden(f"error while removing network: network {name} id {network_id} has active endpoints")


def pool_overlaps() -> Forbidden:
    return Forbidden("Pool overlaps with other one on this address space")


def no_pool_available(family: str = "IPv4") -> Forbidden:
    return Forbidden(
        f"could not find an available, non-overlapping {family} address pool among the defaults to assign to the network"
    )


def address_in_use(address: str) -> Forbidden:
    return Forbidden(f"Address already in use: {address}")


def port_allocated(host_ip: str, host_port: int) -> NetworkError:
    return NetworkError(f"Bind for {host_ip}:{host_port} failed: port is already allocated")
