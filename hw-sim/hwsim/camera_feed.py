"""The simulated camera as the camera worker sees it: `frames(address)`, a frame source with the
same signature as the door's OpenCV and Picamera2 sources, chosen once at startup by the simulated
platform (the worker is started with `--frames hwsim.camera_feed:frames`).

It only reads what the board's camera (`hwsim.camera`) renders, and imports nothing of the
renderer: a real door's worker holds no QR renderer, so neither does the simulated one (4 MB of
the worker's resident memory, measured, were the renderer's modules).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import numpy as np


def frames(address: str) -> Iterator[tuple[float, np.ndarray]]:
    """Frames from the simulated board's camera: `SOCKET#READER`."""
    path, _, reader = address.partition("#")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(json.dumps({"op": "camera_stream", "reader": reader}).encode() + b"\n")
    stream = sock.makefile("rb")
    reply = json.loads(stream.readline() or b"{}")
    if not reply.get("ok"):
        raise OSError(f"simulated camera {reader!r}: {reply.get('error', 'no answer')}")
    while True:
        header = stream.readline()
        if not header:
            raise OSError("simulated camera stream ended (unplugged)")
        meta = json.loads(header)
        data = stream.read(meta["n"])
        if len(data) != meta["n"]:
            raise OSError("simulated camera stream cut mid-frame")
        yield meta["t"], np.frombuffer(data, np.uint8).reshape(meta["h"], meta["w"])
