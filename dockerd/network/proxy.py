"""The userland proxy for one published port (Docker's docker-proxy), a program of its own.

    python -m dockerd.network.proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 \\
        -container-ip 172.18.0.2 -container-port 80

It listens on the host's address and relays every TCP connection (or UDP flow) to the
container's address. It is what makes a published port answer on 127.0.0.1, where the DNAT
rules do not apply (packets to loopback are never routed to a bridge), and it is a separate
process, in a session of its own, so it keeps serving while the daemon restarts.

As docker-proxy, it reports on fd 3 (or `-status-fd N`) once it listens: "0\\n", or "1\\n<error>" and exit 1.
Only the standard library is imported, and no threads serve TCP: one selector loop relays
both directions of every connection.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time

UDP_IDLE = 90.0  # seconds a UDP flow is kept without traffic (docker-proxy's conntrack timeout)
BUFSIZE = 65536


def _args(argv: list[str]) -> dict[str, str]:
    pairs = dict(zip(argv[::2], argv[1::2], strict=False))
    wanted = ("-proto", "-host-ip", "-host-port", "-container-ip", "-container-port")
    missing = [k for k in wanted if k not in pairs]
    if missing or len(argv) % 2:
        raise SystemExit(f"usage: proxy {' '.join(k + ' VALUE' for k in wanted)} [-status-fd N]")
    return {k[1:]: pairs[k] for k in (*wanted, "-status-fd") if k in pairs}


def _report(fd: int, message: str) -> None:
    try:
        os.write(fd, message.encode())
        os.close(fd)
    except OSError:
        pass  # started without a status pipe (by hand)


class TcpRelay:
    def __init__(self, listener: socket.socket, target: tuple[str, int]) -> None:
        self.sel = selectors.DefaultSelector()
        self.target = target
        self.peer: dict[socket.socket, socket.socket] = {}
        self.ended: set[socket.socket] = set()
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, self._accept)

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            a.setblocking(False)
            self.peer[a] = b
            self.sel.register(a, selectors.EVENT_READ, self._relay)

    def _relay(self, sock: socket.socket) -> None:
        other = self.peer[sock]
        try:
            data = sock.recv(BUFSIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._close(sock, other)
        if data:
            try:
                other.setblocking(True)
                other.sendall(data)
                other.setblocking(False)
            except OSError:
                self._close(sock, other)
            return
        # EOF on one side: pass the half-close on; once both sides are done, drop the pair.
        self.sel.unregister(sock)
        self.ended.add(sock)
        try:
            other.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if other in self.ended:
            self._close(sock, other)

    def _close(self, *socks: socket.socket) -> None:
        for s in socks:
            if s not in self.ended:
                self.sel.unregister(s)
            self.ended.discard(s)
            self.peer.pop(s, None)
            s.close()

    def serve(self) -> None:
        while True:
            for key, _ in self.sel.select():
                key.data(key.fileobj)


class UdpRelay:
    def __init__(self, listener: socket.socket, target: tuple[str, int]) -> None:
        self.sel = selectors.DefaultSelector()
        self.listener = listener
        self.target = target
        self.flows: dict[tuple[str, int], tuple[socket.socket, float]] = {}
        self.sel.register(listener, selectors.EVENT_READ, None)

    def serve(self) -> None:
        while True:
            for key, _ in self.sel.select(timeout=UDP_IDLE / 3):
                if key.data is None:
                    data, client = self.listener.recvfrom(BUFSIZE)
                    flow = self.flows.get(client)
                    if flow is None:
                        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        upstream.connect(self.target)
                        self.sel.register(upstream, selectors.EVENT_READ, client)
                        flow = (upstream, 0.0)
                    self.flows[client] = (flow[0], time.monotonic())
                    flow[0].send(data)
                else:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        reply = sock.recv(BUFSIZE)
                    except OSError:
                        continue
                    self.listener.sendto(reply, key.data)
                    self.flows[key.data] = (sock, time.monotonic())
            self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        for client, (upstream, last) in list(self.flows.items()):
            if now - last > UDP_IDLE:
                self.sel.unregister(upstream)
                upstream.close()
                del self.flows[client]


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    proto = args["proto"]
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    host = (args["host-ip"] or "0.0.0.0", int(args["host-port"]))
    target = (args["container-ip"], int(args["container-port"]))
    status_fd = int(args.get("status-fd", "3"))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        if proto not in ("tcp", "udp"):
            raise OSError(0, f"unsupported protocol {proto}")
        listener = socket.socket(socket.AF_INET, kind)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(host)
        if kind == socket.SOCK_STREAM:
            listener.listen(128)
    except OSError as exc:
        _report(status_fd, f"1\nlisten {proto}4 {host[0]}:{host[1]}: bind: {exc.strerror or exc}")
        return 1
    _report(status_fd, "0\n")
    relay = TcpRelay(listener, target) if kind == socket.SOCK_STREAM else UdpRelay(listener, target)
    relay.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
