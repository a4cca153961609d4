"""The simulated board, its socket, and the gpiozero pin factory over it."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from hwsim.board import SimBoard, Wiring
from hwsim.pins import SimFactory
from hwsim.server import BoardClient, BoardServer, LocalLink, RemoteLink, board_answers
from tests.rig import wait_for

WIRING = Wiring(relay=17, door_sensor=27, exit_button=22, fire_alarm=23, lock_sensor=24)


def test_bolt_follows_relay_unless_jammed() -> None:
    board = SimBoard(WIRING)
    assert board.state()["bolt"] == "extended" and not board.relay_energized
    t0 = time.monotonic()
    board.write(17, True)
    assert wait_for(lambda: board.state()["bolt"] == "retracted")
    (retract,) = board.changes("lock_sensor", since=t0)
    (relay_on,) = board.changes("relay", since=t0)
    assert 0.01 <= retract.t - relay_on.t <= 0.2, "the bolt takes a few ms to move"
    board.set_jammed(True)
    board.write(17, False)
    time.sleep(0.1)
    assert board.state()["bolt"] == "retracted", "a jammed bolt stays put"
    board.set_jammed(False)
    assert wait_for(lambda: board.state()["bolt"] == "extended")


def test_active_low_relay() -> None:
    board = SimBoard(Wiring(relay=17, relay_active_high=False))
    assert board.read(17) is True and not board.relay_energized
    board.write(17, False)
    assert board.relay_energized


def test_pin_factory_drives_the_board_and_follows_it() -> None:
    board = SimBoard(WIRING)
    factory = SimFactory(LocalLink(board))
    relay = DigitalOutputDevice("GPIO17", initial_value=False, pin_factory=factory)
    door = DigitalInputDevice("GPIO27", pull_up=False, pin_factory=factory)
    seen: list[str] = []
    door.when_deactivated = lambda: seen.append("opened")
    assert door.is_active, "door closed at power-on"
    relay.on()
    assert board.relay_energized
    board.set_door(True)
    assert seen == ["opened"] and not door.is_active
    relay.off()
    assert [s.state for s in relay.pin.states] == [False, True, False]  # gpiozero's own history
    factory.close()


def test_debounce_reports_the_settled_level() -> None:
    board = SimBoard(WIRING)
    factory = SimFactory(LocalLink(board))
    button = DigitalInputDevice("GPIO22", pull_up=False, bounce_time=0.05, pin_factory=factory)
    presses: list[float] = []
    button.when_activated = lambda: presses.append(time.monotonic())
    for _ in range(5):  # a bouncing contact
        board.set_input("exit_button", True)
        board.set_input("exit_button", False)
    board.set_input("exit_button", True)
    assert wait_for(lambda: button.is_active, 1.0)
    time.sleep(0.1)
    assert len(presses) == 1, f"one press, not {len(presses)}"
    factory.close()


def test_socket_protocol(tmp_path: Path) -> None:
    board = SimBoard(WIRING)
    server = BoardServer(board, tmp_path / "sim.sock")
    server.start()
    try:
        client = BoardClient(tmp_path / "sim.sock")
        assert client.request(op="state") == {
            "ok": True, "relay": False, "door": "closed", "bolt": "extended", "jammed": False,
            "inputs": {"exit_button": False, "fire_alarm": False},
        }
        assert client.request(op="door", open=True) == {"ok": True}
        assert client.request(op="state")["door"] == "open"
        assert client.request(op="input", name="fire_alarm", active=True) == {"ok": True}
        assert board.read(23) is True
        assert client.request(op="jam", jammed=True) == {"ok": True}
        assert client.request(op="nope")["ok"] is False
        assert "unknown op" in client.request(op="nope")["error"]
        assert client.request(op="door", open="yes")["ok"] is False
        assert client.request(op="input", name="doorbell", active=True)["ok"] is False
        raw = socket.socket(socket.AF_UNIX)
        raw.connect(str(tmp_path / "sim.sock"))
        raw.sendall(b"not json\n[1]\n")
        replies = raw.makefile("rb")
        assert json.loads(replies.readline())["ok"] is False
        assert json.loads(replies.readline())["ok"] is False
        raw.close()
        changes = client.request(op="timeline")["changes"]
        assert any(c[2] == "fire_alarm" and c[3] is True for c in changes)
        client.close()
    finally:
        server.close()
    assert not board_answers(tmp_path / "sim.sock")


def test_remote_link_pin_factory(tmp_path: Path) -> None:
    board = SimBoard(WIRING)
    server = BoardServer(board, tmp_path / "sim.sock")
    server.start()
    factory = SimFactory(RemoteLink(tmp_path / "sim.sock"))
    try:
        relay = DigitalOutputDevice("GPIO17", initial_value=False, pin_factory=factory)
        door = DigitalInputDevice("GPIO27", pull_up=False, pin_factory=factory)
        relay.on()
        assert board.relay_energized
        board.set_door(True)
        assert wait_for(lambda: not door.is_active), "input changes stream back over the socket"
        relay.off()
        assert not board.relay_energized
    finally:
        factory.close()
        server.close()


def test_outputs_survive_the_driver_going_away(tmp_path: Path) -> None:
    """Like a Pi kernel: when the driving side disappears, the relay stays as it was."""
    board = SimBoard(WIRING)
    server = BoardServer(board, tmp_path / "sim.sock")
    server.start()
    factory = SimFactory(RemoteLink(tmp_path / "sim.sock"))
    DigitalOutputDevice("GPIO17", initial_value=True, pin_factory=factory)
    factory.link.close()  # the connection drops, as when the process dies
    time.sleep(0.05)
    assert board.relay_energized
    server.close()


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "sim.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    assert not board_answers(path)
    server = BoardServer(SimBoard(WIRING), path)
    server.start()
    assert board_answers(path)
    server.close()
