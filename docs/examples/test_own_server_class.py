"""Testing your own server class (stdlib-based or ours) through the fixtures."""

import socketserver

from sockharness.handlers import LineEchoHandler


class CountingServer(socketserver.ThreadingTCPServer):
    """A user's server: counts the requests it verified."""

    daemon_threads = True
    verified = 0

    def verify_request(self, request, client_address):
        self.verified += 1
        return True


def test_my_server_class(make_server):
    server = make_server(LineEchoHandler, server_class=CountingServer)
    assert server.concurrency == "threading"  # detected from the class
    for n in range(3):
        with server.connect() as client:
            assert client.request(b"%d\n" % n) == b"%d\n" % n
    assert server.server.verified == 3


def test_a_plain_client_for_any_address(make_server, make_client):
    server = make_server(LineEchoHandler, "unix")
    client = make_client(server.address, "unix", timeout=2.0)
    assert client.request(b"over a unix socket\n") == b"over a unix socket\n"
