"""Pod network namespaces, pinned by a bind mount on a file (as containerd's netns package).

`unshare --net=FILE true` (util-linux) makes a new network namespace and binds it on FILE, so it
outlives every process in it; the CNI plugins and the pod's containers enter it by that path.
Removal unmounts and unlinks it. The directory is the plugin's own (under its state dir).
"""

from __future__ import annotations

import errno
import os
import secrets
import subprocess

from common import libc


class NetNSError(Exception):
    pass


def create(directory: str) -> str:
    os.makedirs(directory, mode=0o711, exist_ok=True)
    path = os.path.join(directory, f"cni-{secrets.token_hex(16)}")
    with open(path, "x"):
        pass
    done = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        os.unlink(path)
        raise NetNSError(f"failed to create network namespace: {done.stderr.strip()}")
    return path


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
