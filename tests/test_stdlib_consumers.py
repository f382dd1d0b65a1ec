"""Standard-library servers built on socketserver run on ours when the module is swapped in.

``http.server``, ``xmlrpc.server`` and ``wsgiref.simple_server`` subclass
``socketserver`` classes. With ``sys.modules["socketserver"]`` replaced by
``sockharness.server`` before they are imported, they are built on our classes
and must serve as usual (and shut down at once).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent(
    """
    import sys, threading, urllib.request
    import sockharness.server
    sys.modules["socketserver"] = sockharness.server

    def run(server):
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600})
        thread.start()
        return thread

    def fetch(url):
        # Loopback only: never through a proxy from the environment.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        return opener.open(url, timeout=10).read()

    def stop(server, thread):
        server.shutdown()  # With a one-hour poll interval: only our wake-up ends this.
        thread.join(10)
        assert not thread.is_alive()
        server.server_close()
    """
)

PROGRAMS = {
    "http.server": """
        import http.server, os, tempfile
        directory = tempfile.mkdtemp()
        with open(os.path.join(directory, "hello.txt"), "w") as f:
            f.write("hello over http")
        handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=directory)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        assert isinstance(server, sockharness.server.ThreadingMixIn)
        thread = run(server)
        url = "http://127.0.0.1:%d/hello.txt" % server.server_address[1]
        body = fetch(url)
        stop(server, thread)
        print(body.decode())
    """,
    "xmlrpc.server": """
        import xmlrpc.client, xmlrpc.server
        server = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
        assert isinstance(server, sockharness.server.TCPServer)
        server.register_function(lambda a, b: a + b, "add")
        thread = run(server)
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1:%d" % server.server_address[1])
        result = proxy.add(2, 3)
        stop(server, thread)
        print("add ->", result)
    """,
    "wsgiref": """
        from wsgiref.simple_server import make_server, WSGIRequestHandler
        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello over wsgi"]
        server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
        assert isinstance(server, sockharness.server.TCPServer)
        thread = run(server)
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        body = fetch(url)
        stop(server, thread)
        print(body.decode())
    """,
}

EXPECTED = {
    "http.server": "hello over http",
    "xmlrpc.server": "add -> 5",
    "wsgiref": "hello over wsgi",
}


def run_program(name: str) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + textwrap.dedent(PROGRAMS[name])
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_http_server() -> None:
    completed = run_program("http.server")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == EXPECTED["http.server"]


def test_xmlrpc_server() -> None:
    completed = run_program("xmlrpc.server")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == EXPECTED["xmlrpc.server"]


def test_wsgiref() -> None:
    completed = run_program("wsgiref")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == EXPECTED["wsgiref"]
