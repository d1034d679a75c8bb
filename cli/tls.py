"""TLS for tcp:// daemons, driven through memory BIOs over a plain socket.

Why not ssl.SSLSocket: attach and exec need a half-close (our stdin ended, the container's
output still flows back), which in TLS is a close_notify alert while the connection stays
open. SSLSocket.shutdown() discards the TLS layer and unwrap() waits for the peer's
alert, reading (and dropping) the output we still want. With an SSLObject we send our
close_notify and keep reading, as Go's tls.Conn.CloseWrite does for the docker CLI.
"""

from __future__ import annotations

import socket
import ssl


class TLSStream:
    """The subset of the socket interface the client and the attach pump use."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str) -> None:
        self._sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._plain = b""  # decrypted bytes not yet returned by recv
        self._eof = False
        self._handshake()

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self._sock.sendall(data)

    def _feed(self) -> bool:
        """Move one read of ciphertext from the socket into the TLS engine; False at EOF."""
        data = self._sock.recv(65536)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    def _handshake(self) -> None:
        while True:
            try:
                self._obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise ConnectionResetError(
                        "the daemon closed the connection during the TLS handshake"
                    ) from None

    def _drain(self) -> None:
        """Decrypt everything already received into self._plain."""
        while not self._eof:
            try:
                data = self._obj.read(65536)
            except ssl.SSLWantReadError:
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._eof = True
                return
            if not data:
                self._eof = True
                return
            self._plain += data

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self, size: int) -> bytes:
        """Decrypted bytes; b"" at the end of the stream. Blocks only until one whole
        record is in, which follows promptly once select() saw its first bytes."""
        self._drain()
        while not self._plain and not self._eof:
            if not self._feed():
                self._eof = True
            self._drain()
        data, self._plain = self._plain[:size], self._plain[size:]
        return data

    def send(self, data: bytes) -> int:
        self._obj.write(data)
        self._flush()
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def pending(self) -> int:
        self._drain()
        return len(self._plain)

    def setblocking(self, flag: bool) -> None:
        """Kept blocking: select() on fileno() decides when to read."""

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def shutdown(self, how: int) -> None:
        """SHUT_WR sends our close_notify and keeps the connection readable."""
        if how == socket.SHUT_RD:
            return
        self._drain()  # keep what already arrived: the shutdown below would consume it
        try:
            self._obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify sent; the daemon's comes when it is done writing
        except ssl.SSLError:
            pass
        self._flush()

    def close(self) -> None:
        self._sock.close()


def connect(host: str, port: int, context: ssl.SSLContext) -> TLSStream:
    sock = socket.create_connection((host, port))
    try:
        return TLSStream(sock, context, host)
    except BaseException:
        sock.close()
        raise
