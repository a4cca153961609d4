"""The simulated readers a board carries: serial scanners (ptys) and cameras (rendered frames)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.readers import ReaderConfig
from hwsim.serial_port import SimSerialPort


def serial_link_path(socket_path: Path, reader: str) -> Path:
    """Where the simulated scanner's stable device link lives (beside the board socket)."""
    return socket_path.parent / f"{reader}.tty"


def camera_is_simulated(reader: ReaderConfig) -> bool:
    """Under --sim, cameras on a device are simulated; a video file or stream URL is played for real."""
    source = reader.source
    if isinstance(source, int):
        return True
    if source is None or "://" in source:
        return False
    return source.startswith("/dev/") or source.isdigit() or not Path(source).is_file()


class SimReaders:
    def __init__(self, readers: Sequence[ReaderConfig], socket_path: Path) -> None:
        self.serial: dict[str, SimSerialPort] = {
            r.name: SimSerialPort(serial_link_path(socket_path, r.name))
            for r in readers
            if r.type == "serial"
        }
        self.cameras: dict[str, Any] = {}
        for r in readers:
            if r.type == "camera" and camera_is_simulated(r):
                from hwsim.camera import SimCamera

                self.cameras[r.name] = SimCamera(r.name)

    def ops(self) -> dict[str, Any]:
        return {"show": self.show, "plug": self.plug, "camera_info": self.camera_info}

    def stream_ops(self) -> dict[str, Any]:
        return {"camera_stream": self.camera_stream}

    def camera_stream(self, message: dict[str, Any], conn: Any) -> None:
        camera = self.cameras.get(message.get("reader"))
        if camera is None:
            error = {"ok": False, "error": f"no simulated camera named {message.get('reader')!r}"}
            conn.sendall(json.dumps(error).encode() + b"\n")
            return
        camera.stream(message, conn)

    def show(self, message: dict[str, Any]) -> dict[str, Any]:
        name, text = message.get("reader"), message.get("text")
        if not isinstance(text, str):
            return {"ok": False, "error": "'text' must be a string"}
        if name in self.serial:
            try:
                self.serial[name].send(text.encode("utf-8") + b"\r\n")
            except OSError as exc:
                return {"ok": False, "error": f"reader {name!r}: {exc}"}
            return {"ok": True}
        if name in self.cameras:
            self.cameras[name].show(text)
            return {"ok": True}
        return {"ok": False, "error": f"no simulated reader named {name!r}"}

    def plug(self, message: dict[str, Any]) -> dict[str, Any]:
        """Unplug or replug a reader: {"op": "plug", "reader": NAME, "plugged": bool}."""
        name, plugged = message.get("reader"), message.get("plugged")
        if not isinstance(plugged, bool):
            return {"ok": False, "error": "'plugged' must be true or false"}
        if name in self.serial:
            port = self.serial[name]
            port.plug() if plugged else port.unplug()
            return {"ok": True}
        if name in self.cameras:
            self.cameras[name].plugged = plugged
            return {"ok": True}
        return {"ok": False, "error": f"no simulated reader named {name!r}"}

    def camera_info(self, message: dict[str, Any]) -> dict[str, Any]:
        camera = self.cameras.get(message.get("reader"))
        if camera is None:
            return {"ok": False, "error": f"no simulated camera named {message.get('reader')!r}"}
        return {"ok": True, "first_code_frame_t": camera.first_code_frame_t, "fps": camera.fps,
                "size": list(camera.size)}

    def close(self) -> None:
        for port in self.serial.values():
            port.close()
