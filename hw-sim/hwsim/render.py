"""Rendering a member's phone held up to the door camera, for the simulated camera and test sets.

A QR code on a phone screen (white screen, dark bezel), placed in a scene at a
random size and position, rotated, tilted up to ~25 degrees (a perspective
warp), under mixed light with glare, then blurred (focus or motion), noised and
JPEG-compressed as a cheap camera would. Everything is drawn from a seeded
`random.Random`, so a set is the same on every machine.
"""

from __future__ import annotations

import math
import random

import cv2
import numpy as np
import segno

Frame = np.ndarray  # grey, uint8, shape (h, w)


def qr_image(text: str, module_px: int = 4, border: int = 4) -> Frame:
    qr = segno.make_qr(text, error="m")
    matrix = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    img = np.where(matrix > 0, 0, 255).astype(np.uint8)
    img = np.pad(img, border, constant_values=255)
    return cv2.resize(img, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def phone_screen(text: str, rng: random.Random) -> Frame:
    """The phone, face on: bezel, a white screen, the code in its middle."""
    code = qr_image(text, module_px=6, border=2)
    side = code.shape[0]
    screen_w, screen_h = int(side * 1.2), int(side * 1.6)
    screen = np.full((screen_h, screen_w), rng.randint(215, 255), np.uint8)
    y0 = (screen_h - side) // 2 + rng.randint(-side // 8, side // 8)
    x0 = (screen_w - side) // 2
    screen[y0 : y0 + side, x0 : x0 + side] = np.minimum(code, screen[y0 : y0 + side, x0 : x0 + side])
    # Some app chrome above and below the code.
    cv2.rectangle(screen, (x0, max(0, y0 - side // 5)), (x0 + side, max(0, y0 - side // 10)), 120, -1)
    bezel = side // 12
    return np.pad(screen, bezel, constant_values=rng.randint(10, 40))


def background(width: int, height: int, rng: random.Random) -> Frame:
    """A plausible door-side scene: gradient light, some shapes, texture."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.tau)
    grad = (np.cos(angle) * xx + np.sin(angle) * yy) / max(width, height)
    base = rng.uniform(60, 170) + rng.uniform(-50, 50) * grad
    img = base.astype(np.float32)
    for _ in range(rng.randint(2, 6)):
        color = rng.uniform(20, 230)
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randint(width // 10, width // 2), rng.randint(height // 10, height // 2)
        cv2.rectangle(img, (x, y), (x + w, y + h), color, -1)
    texture = np.array(np.random.default_rng(rng.getrandbits(32)).normal(0, 6, (height, width)), np.float32)
    return np.clip(img + cv2.GaussianBlur(texture, (0, 0), 2), 0, 255).astype(np.uint8)


def _tilt_quad(w: int, h: int, tilt_x: float, tilt_y: float, rot: float, scale: float) -> np.ndarray:
    """Corners of a w*h plane tilted about x and y, rotated in the image plane, projected."""
    corners = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]])
    cx, sx, cy, sy = math.cos(tilt_x), math.sin(tilt_x), math.cos(tilt_y), math.sin(tilt_y)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    cr, sr = math.cos(rot), math.sin(rot)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    pts = corners @ (rz @ ry @ rx).T
    focal = 2.5 * max(w, h)
    proj = pts[:, :2] * (focal / (focal + pts[:, 2:3]))
    return (proj * scale).astype(np.float32)


def phone_frame(
    text: str | None,
    rng: random.Random,
    size: tuple[int, int] = (640, 480),
    *,
    max_tilt_deg: float = 25.0,
    max_rotation_deg: float = 45.0,
) -> Frame:
    """One camera frame; `text=None` renders the scene with no code (a phone showing something else,
    or nothing at all)."""
    width, height = size
    frame = background(width, height, rng).astype(np.float32)
    if text is not None or rng.random() < 0.5:
        phone = phone_screen(text or "", rng) if text is not None else _blank_phone(rng)
        ph, pw = phone.shape
        # The code spans roughly 30-58% of the frame height: a phone held up close to the camera.
        target = rng.uniform(0.45, 1.0) * height
        scale = target / ph
        quad = _tilt_quad(
            pw, ph, math.radians(rng.uniform(-max_tilt_deg, max_tilt_deg)),
            math.radians(rng.uniform(-max_tilt_deg, max_tilt_deg)),
            math.radians(rng.uniform(-max_rotation_deg, max_rotation_deg)), scale,
        )
        span = quad.max(axis=0) - quad.min(axis=0)
        fit = min(1.0, 0.98 * width / span[0], 0.98 * height / span[1])  # the whole phone in view
        quad, span = quad * fit, span * fit
        cx = rng.uniform(span[0] / 2, max(span[0] / 2, width - span[0] / 2))
        cy = rng.uniform(span[1] / 2, max(span[1] / 2, height - span[1] / 2))
        dst = quad + np.array([cx, cy], np.float32)
        src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
        warp = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(phone.astype(np.float32), warp, (width, height), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.ones_like(phone, np.float32), warp, (width, height))
        frame = frame * (1 - mask) + warped * mask
    # Mixed light: contrast and brightness, then a glare spot on part of the frame.
    frame = frame * rng.uniform(0.55, 1.15) + rng.uniform(-25, 30)
    if rng.random() < 0.5:
        gx, gy = rng.randrange(width), rng.randrange(height)
        radius = rng.uniform(0.05, 0.18) * width
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        frame += rng.uniform(40, 110) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * radius**2))
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    # Focus blur or motion blur (a hand moving).
    if rng.random() < 0.5:
        frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.3, 1.5))
    else:
        length = rng.randint(1, 2)  # half-length: a 3-5 px smear, a hand moving at 15 fps
        kernel = np.zeros((length * 2 + 1, length * 2 + 1), np.float32)
        kernel[length, :] = 1.0
        rot = cv2.getRotationMatrix2D((length, length), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, kernel.shape[::-1])
        frame = cv2.filter2D(frame, -1, kernel / max(kernel.sum(), 1e-6))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(1, 7), frame.shape)
    frame = np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(40, 90)])
    assert ok
    decoded: Frame = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
    return decoded


def _blank_phone(rng: random.Random) -> Frame:
    """A phone showing no code (a lock screen, a photo)."""
    h, w = rng.randint(300, 420), rng.randint(150, 220)
    img = np.full((h, w), rng.randint(30, 230), np.uint8)
    for _ in range(rng.randint(1, 5)):
        cv2.rectangle(img, (rng.randrange(w), rng.randrange(h)), (rng.randrange(w), rng.randrange(h)),
                      rng.randint(0, 255), -1)
    return np.pad(img, 12, constant_values=20)
