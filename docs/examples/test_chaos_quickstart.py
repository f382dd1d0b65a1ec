"""Faults as a downstream project's tests use them: in process, and through the proxy."""

import time

import pytest

from sockharness.faults import Latency, LimitData, Loss, ResetPeer, Slicer
from sockharness.handlers import LineEchoHandler, RecordingHandler


def test_a_slow_network_in_the_process(make_server):
    # Every reply the server sends is 50 ms late. No proxy, no extra hop.
    server = make_server(LineEchoHandler, faults=[Latency(0.05, direction="downstream")])
    with server.connect() as client:
        started = time.monotonic()
        assert client.request(b"hello\n") == b"hello\n"
        assert time.monotonic() - started >= 0.05


def test_a_client_whose_writes_arrive_in_pieces(make_server):
    server = make_server(RecordingHandler)
    with server.connect(faults=[Slicer(4, size_variation=2)]) as client:
        assert client.request(b"sliced into small writes\n") == b"sliced into small writes\n"
    assert server.wait_received(1) == [b"sliced into small writes\n"]


def test_the_proxy_in_front_of_any_server(make_server, fault_proxy, make_client):
    server = make_server(LineEchoHandler)
    proxy = fault_proxy(server, faults=[LimitData(8, direction="upstream")])
    client = make_client(proxy.address)
    client.send(b"0123456789\n")
    # The connection is closed after 8 bytes passed: the reply cannot come back whole.
    assert len(client.recv_all()) < 11


def test_faults_change_while_traffic_flows(make_server, fault_proxy, make_client):
    server = make_server(LineEchoHandler)
    proxy = fault_proxy(server)
    client = make_client(proxy.address)
    assert client.request(b"before\n") == b"before\n"
    proxy.add(ResetPeer(after=0.0, direction="downstream"))
    with pytest.raises(ConnectionResetError):
        client.request(b"after\n")


def test_lost_datagrams_are_the_same_for_the_same_seed(make_server, fault_proxy, make_client):
    server = make_server(RecordingHandler, "udp", concurrency="sync")
    proxy = fault_proxy(server, faults=[Loss(0.5, direction="upstream")])
    client = make_client(proxy.address, "udp")
    for n in range(20):
        client.send(b"%02d" % n)
    deadline = time.monotonic() + 5
    while proxy.stats.upstream_datagrams + proxy.stats.dropped_datagrams < 20:
        assert time.monotonic() < deadline, "the proxy did not see all 20 datagrams"
        time.sleep(0.01)
    # Which ones were lost depends only on --sockharness-seed; the timeline says which.
    lost = {int(e.effect.split()[2]) for e in proxy.timeline.events if e.effect.startswith("lost")}
    received = {int(data) for data in server.wait_received(20 - len(lost))}
    assert received == set(range(20)) - lost
