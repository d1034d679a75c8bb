"""Is a daemon serving on this unix socket?

Every layer asks this: a daemon before claiming its socket path (a live one means another
daemon; a dead one is a stale file to remove), pydockerd waiting for the pycontainerd it
started, the shim deciding whether its socket is taken, tests waiting for a daemon. It
uses the C `_socket` module because the shim, started once per container, must not pay
for importing `socket` (enum, selectors...).
"""

from __future__ import annotations

import _socket
import os


def accepting(path: str | bytes | os.PathLike[str], timeout: float = 2.0) -> bool:
    """True if something accepts connections on the unix socket at `path`."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path if isinstance(path, (str, bytes)) else str(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()
