"""A forking server never runs more than max_children, whichever loop drives it."""

import os
import socket

import sockharness.server as socketserver

if not hasattr(os, "fork"):
    raise SystemExit(0)


class Answer(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"pid %d\n" % os.getpid())


with socketserver.ForkingTCPServer(("127.0.0.1", 0), Answer) as server:
    server.max_children = 2
    for _ in range(4):
        with socket.create_connection(server.server_address, timeout=5) as client:
            server.handle_request()
            client.shutdown(socket.SHUT_WR)  # EOF, even to sibling children.
            assert client.recv(100).startswith(b"pid ")
        assert len(server.active_children) <= 2
# server_close() (the with block) waited for every child: no zombies.
assert not server.active_children
print("children reaped")
