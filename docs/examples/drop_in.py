"""Code written for the standard library's socketserver runs unchanged on sockharness.server."""

import socket
import threading

import sockharness.server as socketserver


class LineEcho(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


with socketserver.ThreadingTCPServer(("127.0.0.1", 0), LineEcho) as server:
    thread = threading.Thread(target=server.serve_forever)
    thread.start()

    with socket.create_connection(server.server_address, timeout=5) as client:
        client.sendall(b"hello\n")
        assert client.recv(100) == b"hello\n"

    server.shutdown()  # Returns at once: no waiting out poll_interval.
    thread.join()

print("served and stopped")
