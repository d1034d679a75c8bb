"""Pod network namespaces, pinned by a bind mount on a file (as containerd's netns package).

As containerd does it, in-process: a thread of its own unshares its network namespace and binds
it (/proc/thread-self/ns/net) on FILE, so it outlives every process in it, then ends, taking its
namespace with it (no thread is ever switched back; `unshare --net=FILE true` did the same from
two programs, ~5 ms more per pod). The CNI plugins and the pod's containers enter it by that
path. Removal unmounts and unlinks it. The directory is the plugin's own (under its state dir).
"""

from __future__ import annotations

import errno
import os
import secrets
import threading

from common import libc


class NetNSError(Exception):
    pass


def create(directory: str) -> str:
    os.makedirs(directory, mode=0o711, exist_ok=True)
    path = os.path.join(directory, f"cni-{secrets.token_hex(16)}")
    with open(path, "x"):
        pass
    failed: list[OSError] = []
    pinner = threading.Thread(target=_pin, args=(path, failed), name="cri-netns")
    pinner.start()
    pinner.join()
    if failed:
        os.unlink(path)
        raise NetNSError(f"failed to create network namespace: {os.strerror(failed[0].errno or 0)}")
    return path


def _pin(path: str, failed: list[OSError]) -> None:
    """In a thread that ends right after: only it moves into the new namespace."""
    try:
        libc.unshare(libc.CLONE_NEWNET)
        libc.mount("/proc/thread-self/ns/net", path, None, libc.MS_BIND)
    except OSError as exc:
        failed.append(exc)


def remove(path: str) -> None:
    """Unmount and delete; a path already gone is fine (removal is idempotent)."""
    if not path:
        return
    try:
        libc.umount(path, libc.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise NetNSError(
                f"failed to unmount network namespace {path}: {os.strerror(exc.errno or 0)}"
            ) from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_pinned(path: str) -> bool:
    """The file still holds a namespace (a bind mount of nsfs), e.g. after a daemon restart."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False
