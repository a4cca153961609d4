"""The store guide in a real browser: Playwright driving Debian's Chromium against the service on a
real port, a real door (`doorctl run --sim`) and a real mosquitto. Screenshots of each step go to
.artifacts/browser/ (kept out of git)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from hwsim.broker import free_port
from tests.helpers import ROOT
from tests.rig import wait_for
from tests.test_officepass_web import DOOR, STORE, Site, site  # noqa: F401  (site is a fixture)

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev lock")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / ".artifacts" / "browser"


@pytest.fixture
def served(site: Site) -> Iterator[tuple[Site, str]]:  # noqa: F811
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh installs it)")
    port = free_port()
    config = uvicorn.Config(site.app, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: server.started, 10)
    yield site, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_member_guide_in_a_browser(served: tuple[Site, str]) -> None:
    door_site, base = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        aiko = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP").new_page()
        ben = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP").new_page()

        def log_in(page: object, member: str, password: str, target: str) -> None:
            page.goto(f"{base}{target}")  # type: ignore[attr-defined]
            page.fill("input[name=member]", member)  # type: ignore[attr-defined]
            page.fill("input[name=password]", password)  # type: ignore[attr-defined]
            page.click("button[type=submit]")  # type: ignore[attr-defined]

        def shot(page: object, name: str) -> None:
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]

        # The QR by the door opens the door's page; the app asks to log in first.
        log_in(aiko, "m-1", "correct horse", f"/s/{STORE}/{DOOR}")
        aiko.wait_for_selector("button[data-act=check_in]")
        shot(aiko, "01-door-page")
        log_in(ben, "m-2", "second horse", "/")
        assert ben.inner_text(f"td[data-store={STORE}]").strip() in ("○", "?")
        shot(ben, "02-vacancy-before")
        aiko.click("button[data-act=check_in]")  # 入店する
        assert "入店しました" in aiko.inner_text("[role=status]")
        assert wait_for(door_site.board.relay, 5), "the simulated door unlocked"
        shot(aiko, "03-checked-in")

        # Ben's board changes by itself (server-sent events): no reload.
        ben.wait_for_function(f"document.querySelector('td[data-store={STORE}]').textContent.trim() === '△'",
                              timeout=15_000)
        shot(ben, "04-vacancy-after")
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=unlock]")  # 開錠する, out and back during the stay
        assert "開錠しました" in aiko.inner_text("[role=status]")
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=checkout_begin]")  # チェックアウト手続きに進む
        shot(aiko, "05-checkout-begun")
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.wait_for_selector("button[data-act=checkout]", timeout=15_000)
        aiko.click("button[data-act=unlock]")  # 開錠する at the door, go out
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=checkout]")  # チェックアウトする
        assert "チェックアウトしました" in aiko.inner_text("[role=status]")
        shot(aiko, "06-checked-out")
        # After checkout the page no longer offers 開錠する (the door refuses it too: the HTTP test).
        def only_check_in() -> bool:
            aiko.goto(f"{base}/s/{STORE}/{DOOR}")
            return aiko.query_selector("button[data-act=unlock]") is None

        assert wait_for(only_check_in, 15, step=0.5)
        assert aiko.query_selector("button[data-act=check_in]") is not None
        shot(aiko, "07-after-checkout")
        # A door that does not answer within 5 s: the unlock-trouble screen.
        ben.goto(f"{base}/s/{STORE}/back")
        ben.click("button[data-act=check_in]")
        ben.wait_for_selector("[data-trouble]", timeout=15_000)
        assert "サポートへお電話ください" in ben.inner_text("body")
        shot(ben, "08-trouble")
        browser.close()
    for name in ("01-door-page", "03-checked-in", "08-trouble"):
        assert (SHOTS / f"{name}.png").stat().st_size > 1000
