"""The embedded DNS server: what answers on 127.0.0.11 inside containers on user networks.

As libnetwork's resolver: for each sandbox the daemon opens a UDP and a TCP socket inside
the sandbox's namespace on 127.0.0.11 at ports the kernel picks, and NAT rules in that
namespace send 127.0.0.11:53 there (so the container keeps port 53 of its own addresses).
One thread serves every socket; names are answered from the caller's `lookup` (container
names, aliases, service names on the sandbox's networks, shuffled round-robin between the
addresses sharing a name), and everything else is forwarded to the sandbox's upstream
resolvers from the daemon's namespace, each forward in a worker thread. dnslib encodes and
decodes the packets.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockerd.network import netns
from dockerd.network.iptables import Iptables

if TYPE_CHECKING:
    from dnslib import DNSRecord

log = logging.getLogger("pydockerd.network.dns")
ADDRESS = "127.0.0.11"
TTL = 600  # what libnetwork's resolver answers with

# (sandbox id, name, qtype) -> addresses or PTR names; None when the name is not ours
Lookup = Callable[[str, str, str], list[str] | None]
Upstreams = Callable[[str], list[tuple[str, int]]]


@dataclass
class Listener:
    sandbox: str
    udp: socket.socket
    tcp: socket.socket

    @property
    def ports(self) -> tuple[int, int]:
        return self.udp.getsockname()[1], self.tcp.getsockname()[1]


class Resolver:
    def __init__(self, lookup: Lookup, upstreams: Upstreams, chain_prefix: str) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.chain = chain_prefix
        self.sel = selectors.DefaultSelector()
        self.listeners: dict[str, Listener] = {}
        self.lock = threading.Lock()
        self.pending: list[tuple[str, Listener, threading.Event]] = []
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns-forward")
        self._wake_r, self._wake_w = socket.socketpair()
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False
        self.thread = threading.Thread(target=self._serve, name="embedded-dns", daemon=True)
        self.thread.start()

    # sandboxes -----------------------------------------------------------------------------

    def add(self, sandbox: str, ns: Path) -> None:
        """Listen inside NS and point its 127.0.0.11:53 there (again after a daemon restart)."""
        self.remove(sandbox)
        udp = netns.open_socket(ns, socket.SOCK_DGRAM)
        tcp = netns.open_socket(ns, socket.SOCK_STREAM)
        try:
            udp.bind((ADDRESS, 0))
            tcp.bind((ADDRESS, 0))
            tcp.listen(64)
            listener = Listener(sandbox, udp, tcp)
            self._redirect(ns, *listener.ports)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        self._change("add", listener)

    def _redirect(self, ns: Path, udp_port: int, tcp_port: int) -> None:
        out, post = f"{self.chain}_OUTPUT", f"{self.chain}_POSTROUTING"
        rules = (
            f"*nat\n:{out} - [0:0]\n:{post} - [0:0]\n"
            f"-A {out} -d {ADDRESS}/32 -p udp -m udp --dport 53 -j DNAT --to-destination {ADDRESS}:{udp_port}\n"
            f"-A {out} -d {ADDRESS}/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination {ADDRESS}:{tcp_port}\n"
            f"-A {post} -s {ADDRESS}/32 -p udp -m udp --sport {udp_port} -j SNAT --to-source :53\n"
            f"-A {post} -s {ADDRESS}/32 -p tcp -m tcp --sport {tcp_port} -j SNAT --to-source :53\n"
            "COMMIT\n"
        )
        ipt = Iptables(ns)
        ipt.restore(rules)
        ipt.insert("nat", "OUTPUT", ["-d", f"{ADDRESS}/32", "-j", out])
        ipt.insert("nat", "POSTROUTING", ["-d", f"{ADDRESS}/32", "-j", post])

    def remove(self, sandbox: str) -> None:
        listener = self.listeners.get(sandbox)
        if listener is not None:
            self._change("remove", listener)

    def _change(self, op: str, listener: Listener) -> None:
        # The selector belongs to the serving thread: changes are queued and applied there.
        done = threading.Event()
        with self.lock:
            self.pending.append((op, listener, done))
        self._wake_w.send(b"x")
        if not done.wait(timeout=10):
            raise TimeoutError("the embedded DNS server did not answer")

    def _apply_pending(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
        for op, listener, done in pending:
            if op == "add":
                self.listeners[listener.sandbox] = listener
                self.sel.register(listener.udp, selectors.EVENT_READ, listener)
                self.sel.register(listener.tcp, selectors.EVENT_READ, listener)
            elif self.listeners.get(listener.sandbox) is listener:
                del self.listeners[listener.sandbox]
                for sock in (listener.udp, listener.tcp):
                    self.sel.unregister(sock)
                    sock.close()
            done.set()

    def ports(self, sandbox: str) -> tuple[int, int] | None:
        listener = self.listeners.get(sandbox)
        return listener.ports if listener else None

    def stop(self) -> None:
        for listener in list(self.listeners.values()):
            self._change("remove", listener)
        self._stopping = True
        self._wake_w.send(b"x")
        self.thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._wake_r.close()
        self._wake_w.close()

    # serving -------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping:
            for key, _ in self.sel.select(timeout=1.0):
                sock, listener = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                if listener is None:
                    sock.recv(4096)
                    self._apply_pending()
                    continue
                try:
                    if sock.type == socket.SOCK_DGRAM:
                        data, peer = sock.recvfrom(4096)
                        self.pool.submit(self._answer_udp, listener, sock, data, peer)
                    else:
                        conn, _ = sock.accept()
                        self.pool.submit(self._answer_tcp, listener, conn)
                except OSError:
                    continue

    def _answer_udp(
        self, listener: Listener, sock: socket.socket, data: bytes, peer: tuple[str, int]
    ) -> None:
        reply = self.answer(listener.sandbox, data, tcp=False)
        if reply:
            try:
                sock.sendto(reply, peer)
            except OSError:
                pass

    def _answer_tcp(self, listener: Listener, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with conn:
                while True:
                    head = _recv_exact(conn, 2)
                    if not head:
                        return
                    query = _recv_exact(conn, struct.unpack("!H", head)[0])
                    reply = self.answer(listener.sandbox, query, tcp=True)
                    if not reply:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return

    def answer(self, sandbox: str, data: bytes, tcp: bool) -> bytes | None:
        # dnslib is loaded by the first query, not by a daemon whose containers never ask (0.6 MiB)
        from dnslib import AAAA, PTR, QTYPE, RR, A, DNSRecord

        try:
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - dnslib raises several kinds on malformed packets; drop them
            return None
        if not query.questions:
            return None
        q = query.questions[0]
        name = str(q.qname).rstrip(".").lower()
        qtype = QTYPE.get(q.qtype, str(q.qtype))
        found = self.lookup(sandbox, name, qtype) if qtype in ("A", "AAAA", "PTR") else None
        if found is not None:
            reply = query.reply(ra=1, aa=0)  # as libnetwork: recursion available, not authoritative
            for value in found:
                rdata = PTR(value + ".") if qtype == "PTR" else AAAA(value) if qtype == "AAAA" else A(value)
                reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=TTL))
            return bytes(reply.pack())
        return self._forward(sandbox, query, data, tcp)

    def _forward(self, sandbox: str, query: DNSRecord, data: bytes, tcp: bool) -> bytes:
        for server in self.upstreams(sandbox):
            try:
                return bytes(query.send(server[0], server[1], tcp=tcp, timeout=2, ipv6=":" in server[0]))
            except (OSError, struct.error):
                continue
        from dnslib import RCODE

        reply = query.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return bytes(reply.pack())


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data
