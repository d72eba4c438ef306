"""support.ports: a reserved loopback port cannot be taken by anyone else, yet the server it is for binds it."""

from __future__ import annotations

import socket

import pytest

from support.ports import PortReservation


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_nobody_else_gets_a_reserved_port() -> None:
    with PortReservation() as reserved:
        port = _port(reserved.address())
        # A plain bind (what a careless server does) fails...
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
        # ...and the kernel never hands it out for port 0.
        handed = set()
        for _ in range(2000):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                handed.add(s.getsockname()[1])
        assert port not in handed


def test_the_server_binds_it_like_a_go_listener_and_a_closed_one_refuses() -> None:
    with PortReservation() as reserved:
        port = _port(reserved.address())
        # Nobody listens yet: connections are refused (the "closed proxy" of the Flux tests).
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
        # A listener with SO_REUSEADDR (Go sets it on every listener; sshd, lighttpd and git daemon too).
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                conn, _ = server.accept()
                conn.close()
