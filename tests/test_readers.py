"""Readers: the serial scanner over a real pty, the camera worker (isolation, gating), decoding."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp

from drivers.camera import CameraReader
from drivers.camera_worker import (
    AWAKE_SECONDS,
    FRAME_STALL_SECONDS,
    IDLE_FULL_DECODE_SECONDS,
    Gate,
)
from drivers.decode import DecodePipeline, motion_kernel, smear_direction
from drivers.readers import LineSplitter
from drivers.regrid import regrid_read
from drivers.serial_reader import SerialReader
from hwsim.board import SimBoard, Wiring
from hwsim.camera import SimCamera
from hwsim.ipcamera import IpCamera
from hwsim.render import phone_frame, qr_image
from hwsim.runtime import CAMERA_FRAMES
from hwsim.serial_port import SimSerialPort
from hwsim.server import BoardServer
from tests.helpers import PHOTOS, STAND_INS, code
from tests.procs import doorctl
from tests.rig import wait_for


class Collector:
    def __init__(self) -> None:
        self.codes: list[str] = []
        self.seen: list[tuple[float, float]] = []  # (frame time, when it was delivered)
        self.health: list[tuple[bool, str]] = []
        self.lock = threading.Lock()

    def deliver(self, text: str, seen: float) -> None:
        with self.lock:
            self.codes.append(text)
            self.seen.append((seen, time.monotonic()))

    def on_health(self, ok: bool, detail: str) -> None:
        with self.lock:
            self.health.append((ok, detail))

    def healthy(self) -> bool | None:
        with self.lock:
            return self.health[-1][0] if self.health else None


def read_again(reader: CameraReader, times: int) -> None:
    """The barrier for "one presentation, one code": the worker read the code `times` more times
    after it was delivered (its own counters say so), so a second delivery had its chance."""
    reads = reader.metrics.reads
    assert wait_for(lambda: reader.metrics.reads >= reads + times, 10), reader.metrics


# --- serial ------------------------------------------------------------------------------------


def test_line_splitter() -> None:
    s = LineSplitter(max_chars=10)
    assert s.feed(b"abc") == []
    assert s.feed(b"def\r\n") == ["abcdef"]
    assert s.feed(b"one\rtwo\nthree\r\n\r\n") == ["one", "two", "three"]
    # cut one past the limit, so the verifier says malformed
    assert s.feed(b"0123456789ABCDEF") == ["0123456789A"]
    assert s.feed(b"GHIJ\nnext\n") == ["next"], "the rest of the over-long line is dropped"
    assert s.feed(b"\xff\xfe\x00ok\n") == ["\ufffd\ufffd\x00ok"], "garbage becomes text the verifier rejects"


@pytest.fixture
def pty_port(tmp_path: Path) -> Iterator[SimSerialPort]:
    port = SimSerialPort(tmp_path / "scanner.tty")
    yield port
    port.close()


def test_serial_reader_over_a_real_pty(pty_port: SimSerialPort) -> None:
    got = Collector()
    reader = SerialReader("inside", "exit", str(pty_port.link), 9600)
    reader.start(got.deliver, got.on_health)
    try:
        assert wait_for(lambda: got.healthy() is True)
        text = code("m-1")
        pty_port.send(text[:50].encode())
        time.sleep(0.1)
        pty_port.send(text[50:].encode() + b"\r\n")  # a line in two pieces
        pty_port.send(b"\x00\xffgarbage\n" + b"X" * 2000 + b"\n")
        assert wait_for(lambda: len(got.codes) == 3)
        assert got.codes[0] == text
        assert got.codes[1].endswith("garbage")
        assert len(got.codes[2]) == 513
        # Unplug: a fault; replug (a new pty behind the same stable link): back, and reading again.
        pty_port.unplug()
        assert wait_for(lambda: got.healthy() is False, 3)
        time.sleep(0.5)
        pty_port.plug()
        assert wait_for(lambda: got.healthy() is True, 8)
        pty_port.send(b"after-replug\n")
        assert wait_for(lambda: got.codes[-1:] == ["after-replug"], 3)
    finally:
        reader.stop()


def test_serial_reader_on_a_missing_port_reports_fault(tmp_path: Path) -> None:
    got = Collector()
    reader = SerialReader("inside", "exit", str(tmp_path / "nope"), 9600)
    reader.start(got.deliver, got.on_health)
    try:
        assert wait_for(lambda: got.healthy() is False)
        assert "cannot open" in got.health[-1][1]
    finally:
        reader.stop()


# --- decoding ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_generated_phone_frames_decode_and_empty_frames_never_do() -> None:
    rng = random.Random(2024)
    pipeline = DecodePipeline()
    hits = 0
    total = 160
    for i in range(total):
        size = (640, 480) if i % 2 else (1280, 720)
        text = code(f"m-{i}", cti=i.to_bytes(16, "big"))  # the same frames every run
        hits += text in pipeline.decode(phone_frame(text, rng, size))
    assert hits / total >= 0.97, f"decoded {hits}/{total}"
    for i in range(80):
        size = (640, 480) if i % 2 else (1280, 720)
        assert pipeline.decode(phone_frame(None, rng, size)) == [], "a code read where there is none"


def test_each_fallback_earns_its_place() -> None:
    """640x480 frames, the harder half: the motion and focus deconvolutions read most of what the
    fast path misses."""
    rng = random.Random(4242)
    pipeline = DecodePipeline()
    steps: list[str | None] = []
    for i in range(200):
        text = code(f"m-{i}", cti=i.to_bytes(16, "big"))  # the same frames every run
        found = pipeline.decode(phone_frame(text, rng, (640, 480)))
        steps.append(pipeline.last_step if text in found else None)
    assert steps.count("region-unsmear-up2") >= 8, steps
    assert steps.count("region-deblur-up2") >= 5, steps
    assert steps.count(None) <= 10, steps  # 95% of these, the harder half of the phone set


def test_a_video_frame_gets_the_deconvolution_its_blur_calls_for() -> None:
    """One frame each, as the camera decodes: the fast path, the measured deconvolution, one more."""
    rng = random.Random(99)
    pipeline = DecodePipeline()
    steps: list[str | None] = []
    for i in range(120):
        text = code(f"v-{i}", cti=i.to_bytes(16, "big"))
        found = pipeline.decode_video(phone_frame(text, rng, (640, 480)))
        steps.append(pipeline.last_step if text in found else None)
    assert steps.count(None) <= 6, steps  # 95% of single 640x480 frames
    assert steps.count("region-unsmear-up2") + steps.count("region-deblur-up2") >= 5, steps
    for _ in range(40):
        assert pipeline.decode_video(phone_frame(None, rng, (640, 480))) == [], "a code where there is none"


def test_a_dark_mode_screen_decodes() -> None:
    text = code("m-dark", cti=bytes(16))
    frame = 255 - phone_frame(text, random.Random(5), (640, 480), max_tilt_deg=10)
    pipeline = DecodePipeline()
    assert pipeline.decode(frame) == [text]
    assert pipeline.last_step == "inverted"


def test_smear_direction_is_measured() -> None:
    sharp = np.pad(qr_image(code("m-smear", cti=bytes(16)), module_px=4), 40, constant_values=255)
    assert smear_direction(sharp)[1] > 0.8, "a sharp code has edges every way"
    for angle in (0, 30, 60, 90, 135, 170):
        measured, evenness = smear_direction(cv2.filter2D(sharp, -1, motion_kernel(3, angle)))
        off = min(abs(measured - angle), 180 - abs(measured - angle))
        assert off <= 5, (angle, measured)
        assert evenness < 0.4


def _photos() -> list[tuple[Path, str]]:
    items = []
    for png in sorted(PHOTOS.glob("*/*.png")):
        txt = png.with_suffix(".txt")
        if txt.exists():
            expected = txt.read_bytes().decode("utf-8", errors="replace")
            items.append((png, expected.replace("\r\n", "\n").replace("\r", "\n")))
    return items


@pytest.mark.slow
def test_real_photographs() -> None:
    photos = _photos()
    assert len(photos) == 179
    pipeline = DecodePipeline()
    def normalised(texts: list[str]) -> list[str]:
        return [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts]

    read = sum(expected in normalised(pipeline.decode(cv2.imread(str(p)))) for p, expected in photos)
    assert read >= 172, f"read {read} of {len(photos)}"


def test_a_code_on_a_bent_surface_is_read_on_a_bent_grid() -> None:
    """Codes printed on cloth: zxing-cpp finds them but its straight grid misreads the modules."""
    pipeline = DecodePipeline()
    for name in ("05", "06", "08", "13", "30"):
        png = PHOTOS / "qrcode-4" / f"{name}.png"
        grey = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        expected = png.with_suffix(".txt").read_text()
        assert regrid_read(grey) == [expected], name
        assert pipeline.decode(grey) == [expected] and pipeline.last_step == "regrid", name
    # The same on a code of our own, bent: rows sag, columns bow.
    flat = np.pad(qr_image("http://code.google.com", module_px=4), 40, constant_values=255)
    h, w = flat.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bent = cv2.remap(flat, xx + 6 * np.sin(np.pi * yy / h) * np.sin(2 * np.pi * xx / w),
                     yy + 6 * np.sin(np.pi * xx / w) ** 2, cv2.INTER_LINEAR, borderValue=255)
    bent = cv2.GaussianBlur(bent, (3, 3), 0)
    assert zxingcpp.read_barcodes(bent) == [], "a straight grid does not read it"
    assert regrid_read(bent) == ["http://code.google.com"]
    assert regrid_read(np.full((200, 200), 255, np.uint8)) == [], "nothing found, nothing read"


def test_control_characters_are_kept() -> None:
    """A code's text comes back as it was encoded, not with '<SOH>' for a control character."""
    png = PHOTOS / "qrcode-2" / "33.png"
    expected = png.with_suffix(".txt").read_bytes().decode("utf-8")
    assert "\x01" in expected
    assert DecodePipeline().decode(cv2.imread(str(png))) == [expected]


def test_decode_cli(tmp_path: Path) -> None:
    text = code("m-5")
    frame = phone_frame(text, random.Random(3), (640, 480))
    cv2.imwrite(str(tmp_path / "phone.png"), frame)
    cv2.imwrite(str(tmp_path / "empty.png"), np.full((100, 100), 128, np.uint8))
    res = doorctl("decode", str(tmp_path / "phone.png"), str(tmp_path / "empty.png"))
    assert res.stdout.splitlines() == [text, "none"]
    (tmp_path / "notes.txt").write_text("not an image")
    res = doorctl("decode", str(tmp_path / "missing.png"), str(tmp_path / "notes.txt"))
    assert res.stdout.splitlines() == ["none", "none"] and res.returncode != 0
    assert f"{tmp_path / 'missing.png'}: no such file" in res.stderr
    assert f"{tmp_path / 'notes.txt'}: not a readable image" in res.stderr
    res = doorctl("decode", "--json", str(tmp_path / "phone.png"))
    line = json.loads(res.stdout)
    assert line["image"] == str(tmp_path / "phone.png") and line["text"] == text and line["ms"] > 0


# --- gating ------------------------------------------------------------------------------------


def test_gate_sleeps_on_a_still_scene_and_wakes_within_one_frame() -> None:
    gate = Gate()
    still = np.full((480, 640), 100, np.uint8)
    t = 1000.0
    for _ in range(int(AWAKE_SECONDS * 15) - 1):  # the first frame wakes the gate for a while
        assert gate.wants_decode(still, t)
        t += 1 / 15
    asleep = []
    for _ in range(150):  # then 10 s of nothing changing at 15 fps
        asleep.append(gate.wants_decode(still, t))
        t += 1 / 15
    assert 1 <= sum(asleep) <= 10 / IDLE_FULL_DECODE_SECONDS + 1, "only the periodic look while asleep"
    moved = still.copy()
    cv2.rectangle(moved, (200, 100), (400, 400), 250, -1)  # a phone comes up
    assert gate.wants_decode(moved, t), "something appeared: decode this very frame"


# --- camera worker -----------------------------------------------------------------------------


@pytest.fixture
def sim_camera(tmp_path: Path) -> Iterator[tuple[SimCamera, str]]:
    board = SimBoard(Wiring(relay=17))
    server = BoardServer(board, tmp_path / "sim.sock")
    camera = SimCamera("front")
    server.stream_ops["camera_stream"] = lambda message, conn: camera.stream(message, conn)
    server.start()
    yield camera, f"{tmp_path / 'sim.sock'}#front"
    server.close()


@pytest.fixture
def camera_reader(sim_camera: tuple[SimCamera, str]) -> Iterator[tuple[SimCamera, CameraReader, Collector]]:
    """A CameraReader on the simulated camera, up and healthy."""
    camera, source = sim_camera
    got = Collector()
    # The simulated camera as the sim platform chooses it: the worker's frame source at startup.
    reader = CameraReader("front", "entry", source, frames=CAMERA_FRAMES)
    reader.start(got.deliver, got.on_health)
    try:
        assert wait_for(lambda: got.healthy() is True, 10)
        yield camera, reader, got
    finally:
        reader.stop()


def test_camera_reader_reads_a_shown_code(camera_reader: tuple[SimCamera, CameraReader, Collector]) -> None:
    camera, reader, got = camera_reader
    text = code("m-1")
    camera.show(text)
    assert wait_for(lambda: text in got.codes, 5)
    read_again(reader, 3)
    assert got.codes.count(text) == 1, "one presentation, one code"
    # The member's app shows a fresh code: a new presentation at once, even within 5 s.
    fresh = code("m-1")
    camera.show(fresh)
    assert wait_for(lambda: fresh in got.codes, 5)
    read_again(reader, 3)
    assert got.codes == [text, fresh]


def test_a_crashed_or_hung_decoder_is_restarted(
    camera_reader: tuple[SimCamera, CameraReader, Collector],
) -> None:
    camera, reader, got = camera_reader
    first = reader.worker_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)  # the decoder crashes on a hostile image
    assert wait_for(lambda: got.healthy() is False, 5)
    assert wait_for(lambda: got.healthy() is True and reader.worker_pid != first, 10)
    second = reader.worker_pid
    assert second is not None
    os.kill(second, signal.SIGSTOP)  # the decoder hangs
    assert wait_for(lambda: reader.worker_pid != second and got.healthy() is True, 15)
    text = code("m-2")
    camera.show(text)
    assert wait_for(lambda: text in got.codes, 5), "the restarted worker reads codes again"


def test_unplugged_camera_is_a_fault(camera_reader: tuple[SimCamera, CameraReader, Collector]) -> None:
    camera, _reader, got = camera_reader
    camera.plugged = False
    assert wait_for(lambda: got.healthy() is False, 5)
    camera.plugged = True
    assert wait_for(lambda: got.healthy() is True, 15)


def test_a_network_camera_by_url_reads_faults_and_comes_back() -> None:
    """An IP camera's MJPEG stream through OpenCV's URL path: a code, then the camera drops off
    the network (a fault, while the other readers go on), then it is back."""
    ip_camera = IpCamera(SimCamera("lobby"))
    got = Collector()
    reader = CameraReader("lobby", "entry", ip_camera.url)
    reader.start(got.deliver, got.on_health)
    try:
        assert wait_for(lambda: got.healthy() is True, 15)
        text = code("m-url")
        ip_camera.camera.show(text)
        assert wait_for(lambda: text in got.codes, 5)
        ip_camera.online = False
        assert wait_for(lambda: got.healthy() is False, 10)
        assert "stopped delivering frames" in got.health[-1][1] or "cannot open" in got.health[-1][1]
        ip_camera.online = True
        assert wait_for(lambda: got.healthy() is True, 20)
        again = code("m-url-2")
        ip_camera.camera.show(again)
        assert wait_for(lambda: again in got.codes, 5)
    finally:
        reader.stop()
        ip_camera.close()


def test_video_file_plays_once_then_idles(tmp_path: Path) -> None:
    text = code("m-9")
    video = tmp_path / "door.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    frame = cv2.cvtColor(phone_frame(text, random.Random(1), (640, 480), max_tilt_deg=5), cv2.COLOR_GRAY2BGR)
    blank = np.full((480, 640, 3), 90, np.uint8)
    for i in range(20):
        writer.write(frame if 5 <= i < 15 else blank)
    writer.release()
    got = Collector()
    reader = CameraReader("file", "entry", str(video))
    reader.start(got.deliver, got.on_health)
    try:
        assert wait_for(lambda: text in got.codes, 10)
        # The file has played out, and a heartbeat came after that: the worker had every chance.
        assert wait_for(lambda: reader.metrics.ended, 10)
        ended_at = reader.metrics.beat
        assert wait_for(lambda: reader.metrics.beat > ended_at + 1.0, 5)
        assert got.healthy() is True, "a played-out file is idle, not a fault"
        assert got.codes == [text]
    finally:
        reader.stop()


def test_a_stalled_camera_is_a_fault_and_recovers(
    camera_reader: tuple[SimCamera, CameraReader, Collector],
) -> None:
    """A driver that blocks instead of failing: the device stays open and no frame comes."""
    camera, reader, got = camera_reader
    first = reader.worker_pid
    camera.frozen = True
    assert wait_for(lambda: got.healthy() is False, FRAME_STALL_SECONDS + 3)
    assert got.health[-1][1] == f"no frames for {FRAME_STALL_SECONDS:.0f} s"
    camera.frozen = False
    assert wait_for(lambda: got.healthy() is True and reader.worker_pid != first, 15)
    text = code("m-thawed")
    camera.show(text)
    assert wait_for(lambda: text in got.codes, 5)


# --- Pi camera (Picamera2) -----------------------------------------------------------------------
# No Pi camera or libcamera here: tests/stand_ins/picamera2 keeps the library's surface and frame
# layout, so drivers/picamera.py runs as it does on a Pi, up to the library itself.


@pytest.fixture
def pi_camera_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("PYTHONPATH", str(STAND_INS))
    return monkeypatch


def _start(source: str) -> tuple[CameraReader, Collector]:
    got = Collector()
    reader = CameraReader("csi", "entry", source)
    reader.start(got.deliver, got.on_health)
    return reader, got


def test_pi_camera_reads_a_code_with_the_sensor_timestamp(pi_camera_env: pytest.MonkeyPatch) -> None:
    text = code("m-csi")
    pi_camera_env.setenv("STAND_IN_PICAMERA_TEXT", text)
    reader, got = _start("picamera2:0@1280x720")
    try:
        assert wait_for(lambda: text in got.codes, 10)
        assert got.healthy() is True
        frame_t, delivered = got.seen[0]
        # The stand-in stamps exposure 4 ms before the frame is handed over.
        assert 0.004 <= delivered - frame_t < 0.5
        read_again(reader, 3)
        assert got.codes == [text], "one presentation, one code"
    finally:
        reader.stop()


def test_pi_camera_failures_are_reader_faults(pi_camera_env: pytest.MonkeyPatch) -> None:
    reader, got = _start("picamera2:1")  # one camera attached: there is no camera 1
    try:
        assert wait_for(lambda: got.healthy() is False, 10)
        assert got.health[-1][1].startswith("Pi camera 1 cannot be opened")
    finally:
        reader.stop()
    pi_camera_env.setenv("STAND_IN_PICAMERA_FAIL_AFTER", "5")  # libcamera times out mid-stream
    reader, got = _start("picamera2")
    try:
        failure = (False, "Pi camera 0 failed: Camera frontend has timed out!")
        assert wait_for(lambda: failure in got.health, 10), got.health
        assert got.health[0] == (True, "frames arriving")
        after = got.health.index(failure)
        assert wait_for(lambda: any(ok for ok, _ in got.health[after:]), 10), "restarted, delivering again"
    finally:
        reader.stop()


def test_pi_camera_without_picamera2_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a machine without picamera2, even a Pi that has it (the worker inherits PYTHONPATH).
    monkeypatch.setenv("PYTHONPATH", str(STAND_INS / "without_picamera2"))
    reader, got = _start("picamera2")
    try:
        assert wait_for(lambda: got.healthy() is False, 10)
        assert "picamera2 is not installed (sudo apt install python3-picamera2" in got.health[-1][1]
    finally:
        reader.stop()
