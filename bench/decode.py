"""Readers: decode time per frame, decode rates, frame-to-relay latency under --sim, idle CPU.

Targets (issue 4): decode p95 <= 5 ms per 1280x720 frame with a code; >= 97% of generated
phone frames and >= 167 of the 179 photographs; frame-to-relay p99 <= 1.2x decode + 10 ms;
idle CPU <= 2% of one core (640x480, 15 fps, nobody at the door).
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import zxingcpp

from bench.procs import ROOT, Door, cpu_seconds, member_code, percentile, write_config
from drivers.decode import FALLBACKS, DecodePipeline, code_region, pyzbar_read, to_grey, zxing_read
from hwsim.render import phone_frame

PHOTOS = ROOT / "tests" / "data" / "qr-photos"


def frame_times(pipeline: DecodePipeline, n: int = 150) -> None:
    """Per frame, as the door's camera worker decodes (video mode: fast path + one fallback),
    and as `doorctl decode` does a still (every fallback until one finds a code)."""
    rng = random.Random(77)
    print(f"{'decode ms per frame':<30}{'video: median':>14}{'p95':>8}{'rate':>8}"
          f"{'still: median':>15}{'p95':>8}{'rate':>8}")
    for size in ((640, 480), (1280, 720)):
        for with_code in (False, True):
            cols = []
            frames = [(member_code(f"m-{i}", cti=i.to_bytes(16, "big")) if with_code else None)
                      for i in range(n)]
            rendered = [(text, phone_frame(text, rng, size)) for text in frames]
            for decode in (pipeline.decode_video, pipeline.decode):
                times, hits = [], 0
                for text, frame in rendered:
                    start = time.perf_counter()
                    found = decode(frame)
                    times.append((time.perf_counter() - start) * 1000)
                    hits += (text in found) if with_code else bool(found)
                rate = f"{hits / n:.1%}" if with_code else f"{hits} false"
                cols.append(f"{statistics.median(times):>14.2f}{percentile(times, 95):>8.2f}{rate:>8}")
            label = f"{size[0]}x{size[1]} {'with a code' if with_code else 'empty'}"
            print(f"  {label:<28}{cols[0]} {cols[1]}")


Sample = tuple[str, np.ndarray]  # (expected text, image)


def _normalised(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def generated_set(n: int = 400) -> list[Sample]:
    """Phones held up to the door: half 640x480, half 1280x720 (hwsim.render); the same every run."""
    rng = random.Random(4242)
    return [(text, phone_frame(text, rng, (640, 480) if i % 2 else (1280, 720)))
            for i, text in enumerate(member_code(f"m-{i}", cti=i.to_bytes(16, "big")) for i in range(n))]


def photo_set() -> list[Sample]:
    """The real photographs in tests/data/qr-photos with their expected texts (line ends normalised)."""
    samples = []
    for png in sorted(PHOTOS.glob("*/*.png")):
        txt = png.with_suffix(".txt")
        if txt.exists():
            expected = _normalised(txt.read_bytes().decode("utf-8", errors="replace"))
            samples.append((expected, cv2.imread(str(png))))
    return samples


def _raw_zxing(image: np.ndarray) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def read_rate(pipeline: DecodePipeline, label: str, samples: list[Sample], target: str) -> None:
    hits = {"pipeline": 0, "zxing-cpp": 0, "pyzbar": 0}
    times = []
    for text, image in samples:
        start = time.perf_counter()
        found = pipeline.decode(image)
        times.append((time.perf_counter() - start) * 1000)
        raw = (("pipeline", found), ("zxing-cpp", _raw_zxing(image)), ("pyzbar", pyzbar_read(image)))
        for name, texts in raw:
            hits[name] += text in [_normalised(t) for t in texts]
    n = len(samples)
    print(f"{f'{label} (n={n})':<44}{hits['pipeline']:>5} = {hits['pipeline'] / n:.1%}   {target}"
          f"   (raw zxing-cpp {hits['zxing-cpp']}, raw pyzbar {hits['pyzbar']};"
          f" median {statistics.median(times):.2f} ms)")


def fallback_table(sets: dict[str, list[Sample]]) -> None:
    """What each fallback reads of the frames the fast path misses: the measurement behind their
    order (drivers/decode.py), and whether each still earns its place."""
    print(f"{'fallback: reads of fast-path misses':<36}" + "".join(f"{name:>26}" for name in sets))
    print(f"{'':<36}" + "".join(f"{'reads  only it   median':>26}" for _ in sets))
    columns = []
    for samples in sets.values():
        reads: dict[str, set[int]] = {f.name: set() for f in FALLBACKS}
        times: dict[str, list[float]] = {f.name: [] for f in FALLBACKS}
        misses = 0
        for i, (text, image) in enumerate(samples):
            grey = to_grey(image)
            if text in [_normalised(t) for t in zxing_read(grey)]:
                continue
            misses += 1
            region = code_region(grey)
            for fallback in FALLBACKS:
                start = time.perf_counter()
                found = fallback.read(grey, region)
                times[fallback.name].append((time.perf_counter() - start) * 1000)
                if text in [_normalised(t) for t in found]:
                    reads[fallback.name].add(i)
        columns.append((misses, reads, times))
    for fallback in FALLBACKS:
        row = f"  {fallback.name:<34}"
        for _misses, reads, times in columns:
            others = set().union(*(v for k, v in reads.items() if k != fallback.name))
            only = len(reads[fallback.name] - others)
            median = statistics.median(times[fallback.name])
            row += f"{len(reads[fallback.name]):>11}{only:>8}{median:>6.1f}ms"
        print(row)
    print(f"  {'fast-path misses / read by any':<34}" + "".join(
        f"{misses:>11}{len(set().union(*reads.values())):>8}{'':>8}" for misses, reads, _ in columns))


def frame_to_relay_and_idle(presentations: int = 50) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "door.toml"
        write_config(config, camera=True)
        door = Door(config, separate_board=True)
        try:
            time.sleep(4)  # camera worker up, gate asleep
            before = {pid: cpu_seconds(pid) for pid in door.pids()}
            start = time.monotonic()
            time.sleep(20)
            elapsed = time.monotonic() - start
            used = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in door.pids())
            print(f"{'idle CPU, daemon + camera worker':<44}{used / elapsed:>8.2%}"
                  "   of one core, target <= 2%")
            latencies: list[float] = []  # relay pin change - capture time of the decoded frame
            over: list[float] = []  # latency - (1.2 x that frame's decode time + 10 ms): <= 0 meets it
            decode_ms: list[float] = []
            waited_ms: list[float] = []  # the frame's wait for the decoder (busy with the frame before)
            after_ms: list[float] = []  # from the decode's end to the relay: the door itself
            from_first: list[float] = []
            for i in range(presentations):
                since = time.monotonic()
                door.request(op="show", reader="front", text=member_code(f"lat-{i}"))
                relay_t = None
                end = time.monotonic() + 5
                while relay_t is None and time.monotonic() < end:
                    time.sleep(0.02)
                    for t, _gpio, role, level in door.request(op="timeline", since=since)["changes"]:
                        if role == "relay" and level:
                            relay_t = t
                            break
                first_t = door.request(op="camera_info", reader="front")["first_code_frame_t"]
                time.sleep(0.2)  # the camera's log line follows the delivery
                decoded = _decoded_frame(door, i)
                if relay_t is not None and decoded is not None:
                    frame_t, ms, waited = decoded
                    latencies.append((relay_t - frame_t) * 1000)
                    decode_ms.append(ms)
                    waited_ms.append(waited)
                    after_ms.append(latencies[-1] - waited - ms)
                    over.append(latencies[-1] - (1.2 * ms + 10))
                if relay_t is not None and first_t is not None:
                    from_first.append((relay_t - first_t) * 1000)
                time.sleep(2.0)  # the presentation ends and the pulse is over
            print(f"{'frame-to-relay latency under --sim (ms)':<44}p50 {statistics.median(latencies):.1f}"
                  f"  p99 {percentile(latencies, 99):.1f}  (n={len(latencies)} of {presentations};"
                  " from the frame that was decoded)")
            print(f"{'  decode time of those frames (ms)':<44}p50 {statistics.median(decode_ms):.1f}"
                  f"  p99 {percentile(decode_ms, 99):.1f}")
            print(f"{'  waited for the decoder (ms)':<44}p50 {statistics.median(waited_ms):.1f}"
                  f"  p99 {percentile(waited_ms, 99):.1f}")
            print(f"{'  decode end to relay: the door (ms)':<44}p50 {statistics.median(after_ms):.1f}"
                  f"  p99 {percentile(after_ms, 99):.1f}")
            print(f"{'  latency - (1.2 x decode + 10 ms)':<44}p50 {statistics.median(over):.1f}"
                  f"  p99 {percentile(over, 99):.1f}   target p99 <= 0")
            print(f"{'  p99 latency - (decode p99 + 3 ms)':<44}"
                  f"{percentile(latencies, 99) - percentile(decode_ms, 99) - 3:>8.1f}   target <= 0")
            print(f"{'first code frame to relay (ms)':<44}p50 {statistics.median(from_first):.1f}"
                  f"  p99 {percentile(from_first, 99):.1f}  (includes poses that did not decode)")
        finally:
            door.stop()


def _decoded_frame(door: Door, index: int) -> tuple[float, float, float] | None:
    """Presentation `index`: the capture time of the frame the door decided on, how long that frame
    took to decode and how long it waited for the decoder first (the camera reader logs them)."""
    lines = [line for line in door.log_path.read_text().splitlines() if "decoded in" in line]
    if len(lines) <= index:
        return None
    match = re.search(r"frame_t=([\d.]+), decoded in ([\d.]+) ms .*waited ([\d.]+) ms", lines[index])
    return (float(match.group(1)), float(match.group(2)), float(match.group(3))) if match else None


def main() -> None:
    pipeline = DecodePipeline()
    frame_times(pipeline)
    generated, photos = generated_set(), photo_set()
    read_rate(pipeline, "generated phone set", generated, "target >= 97%")
    read_rate(pipeline, "real photographs", photos, "target >= 167 (aim 172)")
    fallback_table({"generated phone set": generated, "real photographs": photos})
    frame_to_relay_and_idle()


if __name__ == "__main__":
    main()
