"""A handler may stop its own synchronous server: shutdown() does not deadlock here."""

import socket
import threading

import sockharness.server as socketserver


class StopOnQuit(socketserver.StreamRequestHandler):
    def handle(self):
        if self.rfile.readline().strip() == b"quit":
            self.wfile.write(b"bye\n")
            self.server.shutdown()  # The loop ends when this handler returns.


server = socketserver.TCPServer(("127.0.0.1", 0), StopOnQuit)
thread = threading.Thread(target=server.serve_forever)
thread.start()
with socket.create_connection(server.server_address, timeout=5) as client:
    client.sendall(b"quit\n")
    assert client.recv(100) == b"bye\n"
thread.join(timeout=5)
assert not thread.is_alive()
server.server_close()
print("stopped from inside")
