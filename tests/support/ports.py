"""Loopback ports for the servers the tests start, without a release-then-bind gap.

`free_port()` style helpers bind port 0, close the socket and hand out the number: until the server binds it,
any other process on the machine (another test worker, another job) may take it, and the server then fails or,
worse, a client talks to the wrong server. A `PortReservation` keeps its socket bound (SO_REUSEADDR, never
listening) for as long as the server runs:
- the kernel never hands the port to anyone else: an ephemeral bind (port 0) or an outgoing connection skips
  ports in use, and a plain bind to it fails;
- the server still binds and listens on it, because Linux lets a SO_REUSEADDR socket share the port with bound
  sockets that do not listen, and the servers started here set SO_REUSEADDR on their listeners (every Go
  program: etcd, kube-*, kwok, the Flux controllers; sshd, lighttpd, `git daemon --reuseaddr`);
- a reserved port nobody listens on refuses connections: a "closed port" that stays closed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class PortReservation:
    """Ports held for servers about to bind them; `release()` (or `with`) closes the holding sockets."""

    host: str = "127.0.0.1"
    _sockets: list[socket.socket] = field(default_factory=list)

    def port(self) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
        except OSError:
            sock.close()
            raise
        self._sockets.append(sock)
        return int(sock.getsockname()[1])

    def address(self) -> str:
        """"host:port" of a newly reserved port."""
        return f"{self.host}:{self.port()}"

    def release(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
