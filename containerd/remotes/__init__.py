"""Pulling images from registries into a containerd content store: containerd's remotes/docker.

It sits on `containerd.client` only (content writes with the expected digest, gc.ref labels,
unpack, image records), so it runs wherever a client runs: inside pycontainerd (the CRI plugin's
PullImage: the daemon fetches the blobs itself) or in a client process such as pydockerd.

    from containerd.remotes import Puller, RegistryHosts, Credentials
    image = Puller(client, RegistryHosts(mirrors={"docker.io": ["http://127.0.0.1:5000"]})).pull("busybox")
"""

from containerd.remotes.pull import Pulled, Puller, PullError
from containerd.remotes.registry import Credentials, RegistryError, RegistryHosts, Unauthorized

__all__ = ["Credentials", "PullError", "Pulled", "Puller", "RegistryError", "RegistryHosts", "Unauthorized"]
