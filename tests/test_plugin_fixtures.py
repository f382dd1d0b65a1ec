"""The pytest plugin as a downstream project uses it: no conftest, only `pip install sockharness`.

Every test writes a small test module into a fresh directory with ``pytester``
and runs pytest on it, so the plugin is loaded through its entry point exactly
as in a user's project.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_downstream=source)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_the_plugin_is_loaded_from_its_entry_point(pytester: pytest.Pytester) -> None:
    result = run(pytester, "def test_nothing(): pass", "--fixtures")
    for name in [
        "make_server",
        "any_server",
        "make_client",
        "tls_ca",
        "tls_server_context",
        "tls_client_context",
        "payloads",
        "sockharness_seed",
    ]:
        result.stdout.fnmatch_lines([f"{name}*"])
    plain = run(pytester, "def test_nothing(): pass")
    plain.assert_outcomes(passed=1)
    plain.stdout.fnmatch_lines(
        ["sockharness: seed * (replay with --sockharness-seed *), leaks=warn"]
    )


def test_make_server_serves_and_stops(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from sockharness.handlers import UpperHandler

        def test_upper(make_server):
            server = make_server(UpperHandler)
            assert server.kind == "tcp"
            assert server.address[0] == "127.0.0.1"
            with server.connect() as client:
                assert client.request(b"hello\\n") == b"HELLO\\n"

        def test_many_kinds(make_server):
            for kind in ["tcp", "udp", "unix", "unix_dgram"]:
                server = make_server(UpperHandler, kind, concurrency="sync")
                with server.connect() as client:
                    assert client.request(b"x\\n") == b"X\\n"
        """,
    )
    result.assert_outcomes(passed=2)


def test_a_stdlib_handler_and_a_stdlib_server_class_work(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import socketserver

        class Echo(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(self.rfile.readline())

        class MyServer(socketserver.ThreadingTCPServer):
            pass

        def test_stdlib_handler_on_our_server(make_server):
            with make_server(Echo).connect() as client:
                assert client.request(b"ours\\n") == b"ours\\n"

        def test_users_own_stdlib_based_class(make_server):
            server = make_server(Echo, server_class=MyServer)
            assert isinstance(server.server, MyServer)
            assert server.concurrency == "threading"
            with server.connect() as client:
                assert client.request(b"theirs\\n") == b"theirs\\n"
        """,
    )
    result.assert_outcomes(passed=2)


def test_an_undeclared_handler_error_fails_the_test_with_its_traceback(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import socketserver

        class Broken(socketserver.BaseRequestHandler):
            def handle(self):
                data = self.request.recv(100)
                raise ValueError("the handler choked on %r" % data)

        def test_passes_on_its_own(make_server):
            server = make_server(Broken, concurrency="sync")
            with server.connect() as client:
                client.send(b"poison")
                assert client.recv_all() == b""
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*HandlerErrors: 1 handler error in <RunningServer*that the test did not expect*",
            "*ValueError: the handler choked on b'poison'*",
            "*in handle*",
            "*sockharness seed: *",
        ]
    )


@pytest.mark.parametrize("concurrency", ["sync", "threading", "forking"])
def test_errors_are_caught_in_every_concurrency(
    pytester: pytest.Pytester, concurrency: str
) -> None:
    result = run(
        pytester,
        f"""
        from sockharness.handlers import CrashHandler

        def test_crash(make_server):
            server = make_server(CrashHandler, concurrency={concurrency!r})
            with server.connect() as client:
                client.send(b"boom")
                client.recv_all()
        """,
    )
    # The handler reports its error before the request is shut down, so the
    # client's end-of-file comes after it: the test itself fails, every time.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*HandlerCrash: CrashHandler crashed on purpose*"])
    if concurrency == "forking":
        result.stdout.fnmatch_lines(["*in child process*"])


def test_declared_errors_do_not_fail_and_the_context_manager_checks_they_happened(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest
        from sockharness.handlers import CrashHandler, EchoHandler, HandlerCrash

        @pytest.mark.parametrize("concurrency", ["sync", "threading", "forking"])
        def test_declared(make_server, concurrency):
            server = make_server(CrashHandler, concurrency=concurrency)
            with server.expect_errors(HandlerCrash):
                with server.connect() as client:
                    client.send(b"boom")
            assert [e.type_name for e in server.errors] == ["HandlerCrash"]
            assert "on purpose" in server.errors[0].traceback

        def test_expected_but_never_raised(make_server):
            server = make_server(EchoHandler)
            with server.expect_errors(HandlerCrash, timeout=0.2):
                pass
        """,
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*expected a handler to raise HandlerCrash; none did within 0.2 s*"]
    )


def test_a_failing_test_still_stops_its_servers(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import os, threading
        from sockharness.handlers import EchoHandler

        SEEN = {}

        def test_fails(make_server):
            server = make_server(EchoHandler, "unix")
            SEEN["server"] = server
            assert False, "the test itself fails"

        def test_the_server_was_stopped():
            server = SEEN["server"]
            assert server.server.socket.fileno() == -1
            assert not os.path.exists(server.address)
            assert not os.path.exists(os.path.dirname(server.address))
            where = server.address  # The serving thread is named after it.
            assert not [t.name for t in threading.enumerate() if where in t.name]
        """,
    )
    result.assert_outcomes(passed=1, failed=1)


def test_any_server_covers_every_supported_pair_with_readable_ids(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        def test_echo(any_server):
            with any_server.connect() as client:
                assert client.request(b"ping\\n") == b"ping\\n"
        """,
        "-v",
    )
    ids = re.findall(r"test_echo\[([a-z0-9_]+-[a-z]+)\]", result.stdout.str())
    expected = {
        f"{kind}-{concurrency}"
        for kind in ["tcp", "tcp6", "udp", "udp6", "unix", "unix_dgram"]
        for concurrency in ["sync", "threading", "forking"]
    }
    assert set(ids) == expected
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 18


def test_the_marker_narrows_any_server_and_sets_its_handler(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from sockharness.handlers import UpperHandler

        @pytest.mark.sockharness(kinds=["tcp", "unix"], concurrency="forking", handler=UpperHandler)
        def test_upper(any_server):
            assert any_server.concurrency == "forking"
            with any_server.connect() as client:
                assert client.request(b"ping\\n") == b"PING\\n"
        """,
        "-v",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*test_upper?tcp-forking? PASSED*", "*test_upper?unix-forking? PASSED*"]
    )


def test_the_marker_sets_server_attrs_and_a_server_class(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        import sockharness.server as ss

        class Greeter(ss.BaseRequestHandler):
            def handle(self):
                greeting = self.server.greeting
                if isinstance(self.request, tuple):
                    self.request[1].sendto(greeting, self.client_address)
                else:
                    self.request.recv(1)  # The client's byte first: no reset under it.
                    self.request.sendall(greeting)

        class Mine(ss.ThreadingTCPServer):
            greeting = b"mine\\n"

        @pytest.mark.sockharness(handler=Greeter, server_attrs={"greeting": b"hi\\n"})
        def test_every_kind_has_the_attribute(any_server):
            with any_server.connect() as client:
                client.send(b"x")
                assert client.recv() == b"hi\\n"

        @pytest.mark.sockharness(handler=Greeter, server_class=Mine)
        def test_a_class_runs_where_it_fits(any_server):
            assert type(any_server.server).__name__ == "Mine"
            with any_server.connect() as client:
                client.send(b"x")
                assert client.recv() == b"mine\\n"

        @pytest.mark.sockharness(
            handler=Greeter, kinds=["tcp", "udp"], concurrency="threading",
            server_class={"tcp": Mine}, server_attrs={"greeting": b"set\\n"},
        )
        def test_a_mapping_names_classes_per_kind(any_server):
            expected = "Mine" if any_server.kind == "tcp" else "ThreadingUDPServer"
            assert type(any_server.server).__name__ == expected
            with any_server.connect() as client:
                client.send(b"x")
                assert client.recv() == b"set\\n"
        """,
        "-v",
    )
    pairs = sum(
        1
        for line in result.stdout.lines
        if "::test_every_kind_has_the_attribute[" in line and " PASSED" in line
    )
    assert pairs >= 12
    result.assert_outcomes(passed=pairs + 1 + 2)
    result.stdout.fnmatch_lines(["*test_a_class_runs_where_it_fits?tcp-threading? PASSED*"])


def test_bad_marker_server_arguments_are_clear_errors(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.sockharness(server_attrs=["timeout"])
        def test_x(any_server):
            pass
        """,
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*server_attrs=...) takes a dict of attribute names*"])


def test_a_bad_marker_is_a_clear_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.sockharness(kinds=["carrier-pigeon"])
        def test_x(any_server):
            pass
        """,
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*kind='carrier-pigeon' is not a transport sockharness knows*"])


def test_tls_servers_and_clients_trust_the_session_ca(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import ssl
        import pytest
        from sockharness import UsageError
        from sockharness.handlers import LineEchoHandler

        @pytest.mark.parametrize("kind", ["tcp", "unix"])
        @pytest.mark.parametrize("concurrency", ["threading", "forking"])
        def test_tls(make_server, kind, concurrency):
            server = make_server(LineEchoHandler, kind, concurrency=concurrency, tls=True)
            with server.connect() as client:
                assert isinstance(client.sock, ssl.SSLSocket)
                assert client.request(b"secret\\n") == b"secret\\n"

        def test_make_client_with_the_session_ca(make_server, make_client):
            server = make_server(LineEchoHandler, tls=True)
            client = make_client(server.address, tls=True)
            assert client.request(b"hi\\n") == b"hi\\n"

        def test_contexts(tls_ca, tls_server_context, tls_client_context, make_server):
            server = make_server(LineEchoHandler, tls=tls_server_context)
            import socket
            raw = socket.create_connection(server.address, timeout=5)
            with tls_client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock:
                tls_sock.sendall(b"ctx\\n")
                assert tls_sock.recv(10) == b"ctx\\n"

        def test_a_client_that_does_not_trust_the_ca_is_refused(make_server, make_client):
            server = make_server(LineEchoHandler, tls=True)
            server.expect_errors(ssl.SSLError, ConnectionError)
            with pytest.raises(ssl.SSLCertVerificationError):
                make_client(server.address, tls=ssl.create_default_context())

        def test_tls_on_datagrams_is_a_clear_error(make_server):
            with pytest.raises(UsageError, match="tls=True needs a stream kind"):
                make_server(LineEchoHandler, "udp", tls=True)
        """,
    )
    result.assert_outcomes(passed=8)


def test_make_client_reaches_a_server_sockharness_did_not_start(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import socket, threading

        def test_plain_socket_server(make_client):
            listener = socket.create_server(("127.0.0.1", 0))
            def serve():
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(conn.recv(100)[::-1] + b"\\n")
            thread = threading.Thread(target=serve)
            thread.start()
            client = make_client(listener.getsockname(), timeout=2)
            assert client.request(b"olleh") == b"hello\\n"
            thread.join(5)
            listener.close()
        """,
    )
    result.assert_outcomes(passed=1)


def test_receive_timeouts_name_the_peer_and_what_was_awaited(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from sockharness.handlers import DiscardHandler

        def test_waits(make_server):
            server = make_server(DiscardHandler)
            client = server.connect(timeout=0.2)
            client.send(b"anyone?")
            client.recv_line()
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*ReceiveTimeout: waited 0.2 s for data ending in b'\\n' from tcp 127.0.0.1:*, in vain*"]
    )


def test_unix_paths_are_private_short_and_removed(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import os, stat

        PATHS = []

        def test_deep_tmp_path_does_not_matter(make_server, tmp_path):
            from sockharness.handlers import EchoHandler
            server = make_server(EchoHandler, "unix")
            directory = os.path.dirname(server.address)
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
            assert len(os.fsencode(server.address)) < 60
            PATHS.append(server.address)

        def test_removed_afterwards():
            assert not os.path.exists(PATHS[0])
            assert not os.path.exists(os.path.dirname(PATHS[0]))
        """,
    )
    result.assert_outcomes(passed=2)


def test_server_attributes_are_set_before_the_server_binds(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import socket
        import pytest
        from sockharness import UsageError
        from sockharness.handlers import EchoHandler

        def test_attrs(make_server):
            server = make_server(EchoHandler, allow_reuse_address=True, daemon_threads=True,
                                 request_queue_size=17)
            assert server.server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            assert server.server.daemon_threads is True
            assert server.server.request_queue_size == 17

        def test_a_typo_is_caught(make_server):
            with pytest.raises(UsageError, match="did you mean 'daemon_threads'"):
                make_server(EchoHandler, daemon_thread=True)

        def test_faults_must_be_specs(make_server):
            with pytest.raises(UsageError, match="faults must be fault specs"):
                make_server(EchoHandler, faults=["latency"])

        def test_bad_handler(make_server):
            with pytest.raises(UsageError, match="pass the class itself, not an instance"):
                make_server(EchoHandler.__new__(EchoHandler))
        """,
    )
    result.assert_outcomes(passed=4)


def test_seed_last_reuses_the_previous_runs_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_seeded="""
        def test_data(payloads, sockharness_seed):
            print("DATA", sockharness_seed, payloads.bytes(8).hex())
        """
    )

    def data(result: pytest.RunResult) -> list[str]:
        return [line for line in result.stdout.lines if line.startswith("DATA")]

    first = pytester.runpytest("-p", "no:randomly", "-s")
    seed = next(
        line.split()[2] for line in first.stdout.lines if line.startswith("sockharness: seed")
    )
    again = pytester.runpytest("-p", "no:randomly", "-s", "--sockharness-seed", "last")
    again.stdout.fnmatch_lines(
        [f"sockharness: seed {seed} (replay with --sockharness-seed {seed})*"]
    )
    assert data(again) == data(first)
    # Under xdist too: the workers take the controller's seed, the last one.
    parallel = pytester.runpytest("-p", "no:randomly", "-n", "2", "--sockharness-seed", "last")
    parallel.stdout.fnmatch_lines([f"sockharness: seed {seed} *"])
    parallel.assert_outcomes(passed=1)
    # A new seed becomes the last one.
    pytester.runpytest("-p", "no:randomly", "--sockharness-seed", "77")
    last = pytester.runpytest("-p", "no:randomly", "-s", "--sockharness-seed", "last")
    last.stdout.fnmatch_lines(["sockharness: seed 77 *"])


def test_seed_last_with_no_previous_seed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--sockharness-seed", "last")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--sockharness-seed last: no previous run's seed to reuse (the cache is off*"]
    )
    bad = pytester.runpytest("--sockharness-seed", "soon")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*'soon' is not a seed: give a whole number*, or 'last'"])


def test_payloads_are_the_same_for_the_same_seed(pytester: pytest.Pytester) -> None:
    source = """
        def test_data(payloads):
            print("DATA", payloads.bytes(8).hex(), payloads.line(), payloads.json_record()["name"])
        """
    first = run(pytester, source, "-s", "--sockharness-seed", "42")
    second = run(pytester, source, "-s", "--sockharness-seed", "42")
    other = run(pytester, source, "-s", "--sockharness-seed", "43")
    lines = [
        [line for line in r.stdout.lines if line.startswith("DATA") or "DATA" in line]
        for r in (first, second, other)
    ]
    assert lines[0]
    assert lines[0] == lines[1]
    assert lines[0] != lines[2]
    first.stdout.fnmatch_lines(["sockharness: seed 42 (replay with --sockharness-seed 42)*"])
