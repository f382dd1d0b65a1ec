"""Replay files: a failing test writes one; --sockharness-replay runs it again and compares."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from sockharness import UsageError
from sockharness.faults import Event, Recording, Timeline, decisions_of

# A client that does not retry: the second connection, reset by the server, fails it.
FLAKY_CLIENT = """
import pytest
from sockharness.faults import Loss, ResetPeer
from sockharness.handlers import LineEchoHandler, RecordingHandler

def test_three_requests(make_server):
    server = make_server(
        LineEchoHandler, faults=[ResetPeer(direction="downstream", connections="1")]
    )
    for n in range(3):
        with server.connect() as client:
            assert client.request(b"hello\\n") == b"hello\\n"

def test_unrelated():
    pass
"""


def _replay_file(result: pytest.RunResult) -> str:
    line = next(text for text in result.stdout.lines if text.startswith("replay with: pytest"))
    return line.split("--sockharness-replay ", 1)[1]


def test_a_failing_test_writes_a_replay_file_named_in_its_report(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_flaky=FLAKY_CLIENT)
    result = pytester.runpytest("-p", "no:randomly", "--sockharness-seed", "9")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- sockharness replay -*",
            "replay file: .sockharness/failures/test_flaky.py_test_three_requests-*.json",
        ]
    )
    recording = Recording.read(pytester.path / _replay_file(result))
    assert recording.name == "test_flaky.py::test_three_requests"
    assert recording.seed == 9
    assert recording.plans[0]["source"] == "server 0"
    assert recording.plans[0]["faults"] == ["ResetPeer(direction='downstream', connections='1')"]
    ((key, sequence),) = recording.decisions.items()
    assert key == "server 0 conn 1 downstream"
    assert sequence[0][1].startswith("reset the connection")
    raw = json.loads((pytester.path / _replay_file(result)).read_text())
    assert raw["python"] == platform.python_version()
    assert raw["sockharness"]
    assert raw["format"] == 1


def test_the_replay_runs_that_test_alone_with_its_seed_and_the_same_decisions(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_flaky=FLAKY_CLIENT)
    first = pytester.runpytest("-p", "no:randomly")
    path = _replay_file(first)
    seed = Recording.read(pytester.path / path).seed
    replay = pytester.runpytest("-p", "no:randomly", "--sockharness-replay", path)
    replay.assert_outcomes(failed=1, deselected=1)  # The bug, found again; nothing else ran.
    replay.stdout.fnmatch_lines(
        [
            f"sockharness: seed {seed} *",
            f"sockharness replay of {path}: the 1 recorded fault decisions came again, in order",
        ]
    )
    # A replay writes no replay file of its own over the one it replays.
    assert "replay file:" not in replay.stdout.str()


def test_a_replay_that_diverges_fails_at_the_first_divergent_decision(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_flaky=FLAKY_CLIENT)
    path = pytester.path / _replay_file(pytester.runpytest("-p", "no:randomly"))
    raw = json.loads(path.read_text())
    raw["decisions"] = {"server 0 conn 0 downstream": [["ResetPeer(...)", "reset at once"]]}
    path.write_text(json.dumps(raw))
    replay = pytester.runpytest("-p", "no:randomly", "--sockharness-replay", str(path))
    replay.stdout.fnmatch_lines(
        [
            "*the run diverged from the recording at server 0 conn 0 downstream, decision 0: "
            "recorded ResetPeer(...): reset at once; this run nothing*"
        ]
    )
    assert replay.ret == pytest.ExitCode.TESTS_FAILED


def test_replay_files_can_go_elsewhere_or_nowhere(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_flaky=FLAKY_CLIENT)
    pytester.runpytest("-p", "no:randomly", "--sockharness-failures", "out/replays")
    assert len(list((pytester.path / "out" / "replays").glob("*.json"))) == 1
    off = pytester.runpytest("-p", "no:randomly", "--sockharness-failures", "off")
    assert "replay file:" not in off.stdout.str()
    assert not (pytester.path / ".sockharness").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        ("{", "is not JSON"),
        ('{"format": 99}', "is not a sockharness replay file of format 1"),
        ('{"format": 1, "name": "x"}', "is damaged"),
    ],
)
def test_a_bad_replay_file_is_a_usage_error(
    pytester: pytest.Pytester, content: str | None, message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    path = pytester.path / "replay.json"
    if content is not None:
        path.write_text(content)
    result = pytester.runpytest("--sockharness-replay", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--sockharness-replay: replay file *{message}*"])


def test_a_replay_of_a_test_not_collected_or_with_another_seed_is_refused(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_x(): pass")
    path = Recording(name="test_gone.py::test_y", seed=3).write(pytester.path / "r.json")
    gone = pytester.runpytest("--sockharness-replay", str(path))
    assert gone.ret == pytest.ExitCode.USAGE_ERROR
    gone.stderr.fnmatch_lines(["*the recorded test test_gone.py::test_y was not collected*"])
    seeded = pytester.runpytest("--sockharness-replay", str(path), "--sockharness-seed", "4")
    assert seeded.ret == pytest.ExitCode.USAGE_ERROR
    seeded.stderr.fnmatch_lines(["*a replay runs with its own seed*"])


def test_decisions_are_compared_per_connection_and_direction_without_times(
    tmp_path: Path,
) -> None:
    one, two = Timeline(), Timeline()
    # The same decisions, in another interleaving of connections and at other times.
    one.add(Event(0.1, 0, "upstream", "Loss(0.5)", "dropped datagram 1"))
    one.add(Event(0.2, 1, "upstream", "Loss(0.5)", "dropped datagram 0"))
    two.add(Event(0.9, 1, "upstream", "Loss(0.5)", "dropped datagram 0"))
    two.add(Event(1.5, 0, "upstream", "Loss(0.5)", "dropped datagram 1"))
    recorded = Recording("t", 1, decisions=decisions_of([("proxy 0", one)]))
    assert recorded.first_divergence(decisions_of([("proxy 0", two)])) is None
    two.add(Event(2.0, 1, "upstream", "Loss(0.5)", "dropped datagram 3"))
    assert recorded.first_divergence(decisions_of([("proxy 0", two)])) == (
        "proxy 0 conn 1 upstream, decision 1: recorded nothing; this run Loss(0.5): "
        "dropped datagram 3"
    )
    again = Recording.read(recorded.write(tmp_path / "deep" / "r.json"))
    assert again == recorded
    with pytest.raises(UsageError, match="cannot be read"):
        Recording.read(tmp_path / "missing.json")
