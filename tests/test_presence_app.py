"""Presence-bound app unlocks end to end (contract §9): a real `doorctl run --sim` with [presence]
shows its rotating code on the simulated screen (the simulator's display op); the member's phone
(Chromium's fake camera, fed a video of that screen in which the code changes) scans it in the
page and 入店する unlocks; the same press with a photo of the screen from well before is refused
with the guide's "scan again"; checking out needs no presence. The screen hides the code while the
door is offline from the cloud."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.decode import DecodePipeline
from hwsim.broker import free_port
from tests.fake_camera import screen_frame, write_y4m
from tests.rig import wait_for
from tests.test_officepass_browser import CHROMIUM, SHOTS, playwright, serving
from tests.test_officepass_web import DOOR, STORE, Site, running_site

WINDOW, ACCEPT = 5, 20
PC_RE = r"[?&]pc=([A-Z2-7]+)"


def screen(site: Site) -> tuple[bytes | None, str | None]:
    reply = site.board.request(op="display")
    assert reply["ok"] is True
    png = reply["png"]
    return (base64.b64decode(png) if png else None), reply["text"]


@pytest.fixture
def presence_site(tmp_path: Path) -> Iterator[tuple[Site, str]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh installs it)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    presence = {"url": f"{base}/s/{{store}}/{{door}}", "window_seconds": WINDOW, "accept_seconds": ACCEPT,
                "display": "fb:/dev/fb0"}
    with running_site(tmp_path, f"sqlite:///{tmp_path / 'officepass.db'}", presence=presence) as site, \
            serving(site, port):
        yield site, base


def test_the_screen_shows_the_code_and_hides_it_offline(presence_site: tuple[Site, str]) -> None:
    site, base = presence_site
    assert wait_for(lambda: screen(site)[1] is not None, 15), "the screen shows a code once online"
    png, text = screen(site)
    assert text is not None and text.startswith(f"{base}/s/{STORE}/{DOOR}?pc=")
    import cv2

    picture = cv2.imdecode(np.frombuffer(png or b"", dtype=np.uint8), cv2.IMREAD_COLOR)
    assert DecodePipeline().decode(picture) == [text], "the screen's picture holds what it says"
    assert wait_for(lambda: screen(site)[1] not in (None, text), WINDOW + 3), "the code changes"
    site.broker.stop()
    assert wait_for(lambda: screen(site)[1] is None, 30), "offline: the code is hidden"
    png, _ = screen(site)
    assert png is not None, "the store name still shows"


@pytest.mark.slow
def test_presence_bound_unlocks_in_the_browser(presence_site: tuple[Site, str], tmp_path: Path) -> None:
    site, base = presence_site
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert wait_for(lambda: screen(site)[1] is not None, 15)
    photo_png, photo_text = screen(site)  # someone photographs the screen
    photo_taken = time.monotonic()
    assert photo_png is not None and photo_text is not None
    # A few seconds of the screen as the phone sees it: the code changes during the video.
    frames: list[Any] = []
    texts: set[str] = set()
    end = time.monotonic() + WINDOW + 2
    while time.monotonic() < end:
        png, text = screen(site)
        if png is not None and text is not None:
            frames.append(screen_frame(png))
            texts.add(text)
        time.sleep(0.5)
    assert len(texts) >= 2, "the code changed while the phone looked"
    fresh = write_y4m(tmp_path / "screen.y4m", frames, fps=2)
    stale = write_y4m(tmp_path / "photo.y4m", [screen_frame(photo_png)] * 4, fps=2)

    with playwright.sync_playwright() as pw:
        def phone(video: Path) -> Any:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={video}"])
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP",
                                          permissions=["camera"])
            return browser, context.new_page()

        def log_in_and_scan(page: Any, member: str, password: str) -> str:
            page.goto(f"{base}/scan")  # the app asks to log in first, then opens the scanner
            page.fill("input[name=member]", member)
            page.fill("input[name=password]", password)
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url(f"{base}/s/{STORE}/{DOOR}?pc=*", timeout=20_000)
            return str(page.url)

        browser, aiko = phone(fresh)
        scanned = log_in_and_scan(aiko, "m-1", "correct horse")
        assert any(scanned == t for t in texts), "the page carries the code the screen showed"
        aiko.screenshot(path=str(SHOTS / "20-presence-scanned.png"), full_page=True)
        aiko.click("button[data-act=check_in]")  # 入店する with the fresh code
        assert "入店しました" in aiko.inner_text("[role=status]")
        assert wait_for(site.board.relay, 5), "the simulated door unlocked"
        aiko.screenshot(path=str(SHOTS / "21-presence-checked-in.png"), full_page=True)
        # Checking out needs no presence: the door page opened without a scanned code.
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=checkout_begin]")
        assert aiko.query_selector("[role=status].refused") is None
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.wait_for_selector("button[data-act=checkout]", timeout=15_000)
        aiko.click("button[data-act=checkout]")
        assert "チェックアウトしました" in aiko.inner_text("[role=status]")
        browser.close()

        # The photo is now older than accept_seconds allow (its window ended at most WINDOW s after).
        wait = photo_taken + WINDOW + ACCEPT + 1 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        browser, ben = phone(stale)
        scanned = log_in_and_scan(ben, "m-2", "second horse")
        assert scanned == photo_text
        ben.click("button[data-act=check_in]")
        assert "もう一度読み取ってください" in ben.inner_text("[role=status]")
        assert ben.query_selector("a[data-rescan]") is not None
        ben.screenshot(path=str(SHOTS / "22-presence-photo-refused.png"), full_page=True)
        browser.close()
    assert not site.board.relay()
