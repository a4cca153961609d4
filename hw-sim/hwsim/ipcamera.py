"""A simulated IP camera: a SimCamera's frames as an MJPEG stream over HTTP on 127.0.0.1.

The door reads it through OpenCV's stream-URL path (FFmpeg), the same code that reads a
real network camera. `online = False` ends the streams being served and answers new
connections with 503, as a camera that reboots or drops off the network.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2

from hwsim.camera import SimCamera


class IpCamera:
    def __init__(self, camera: SimCamera) -> None:
        self.camera = camera
        self.online = True
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not owner.online:
                    self.send_error(503, "camera offline")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                owner._stream(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="ipcamera", daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/stream.mjpg"

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        period = 1.0 / self.camera.fps
        index = 0
        while self.online:
            _t, frame = self.camera.frame(index)
            ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                return
            part = jpeg.tobytes()
            try:
                handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                    % len(part) + part + b"\r\n")
            except OSError:
                return  # the door hung up
            index += 1
            time.sleep(period)

    def close(self) -> None:
        self.online = False
        self._server.shutdown()
        self._server.server_close()
