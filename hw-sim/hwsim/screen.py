"""The simulated door screen (contract §9, §7): the door's display driver sends each picture to the
board as a PNG; the board keeps the last one and answers `{"op": "display"}` with it and the QR
text it shows. Like a small SPI panel by the door: 480 x 320."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwsim.server import BoardClient

if TYPE_CHECKING:
    from numpy.typing import NDArray

WIDTH, HEIGHT = 480, 320


class ScreenState:
    """The board's side: the last picture shown, as PNG, and its QR text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._png: str | None = None
        self._text: str | None = None

    def ops(self) -> dict[str, Any]:
        return {"display": self._display, "screen_show": self._show}

    def _display(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {"ok": True, "png": self._png, "text": self._text}

    def _show(self, message: dict[str, Any]) -> dict[str, Any]:
        png, text = message.get("png"), message.get("text")
        if not (png is None or isinstance(png, str)) or not (text is None or isinstance(text, str)):
            raise ValueError("png and text are base64 text and text, or null")
        with self._lock:
            self._png, self._text = png, text
        return {"ok": True}


class SimScreen:
    """The door's side: the Screen interface of drivers.display, over the board socket."""

    width, height = WIDTH, HEIGHT

    def __init__(self, socket_path: Path) -> None:
        self._client = BoardClient(socket_path)

    def show(self, image: NDArray[Any], text: str | None, rows: tuple[int, int] | None = None) -> None:
        import cv2  # only a door with a screen draws: the others never load OpenCV in the daemon

        ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError("the picture could not be encoded as PNG")
        encoded = base64.b64encode(png.tobytes()).decode()
        reply = self._client.request(op="screen_show", png=encoded, text=text)
        if not reply.get("ok"):
            raise OSError(f"the simulated board refused the picture: {reply.get('error')}")

    def close(self) -> None:
        self._client.close()
