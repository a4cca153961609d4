"""The store guide in a real browser: Playwright driving Debian's Chromium against the service on a
real port, a real door (`doorctl run --sim`) and a real mosquitto. Screenshots of each step go to
.artifacts/browser/ (kept out of git)."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hwsim.broker import free_port
from tests.fake_camera import qr_frame, write_y4m
from tests.helpers import ROOT
from tests.pg import new_database
from tests.rig import wait_for
from tests.test_officepass_web import DOOR, STORE, Site, postgres, site  # noqa: F401  (fixtures)

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev lock")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / ".artifacts" / "browser"


@pytest.fixture
def database(postgres: str) -> str:  # noqa: F811
    """The browser walks the guide on PostgreSQL (the HTTP tests run on both databases), each test in
    a new database of the throwaway cluster."""
    return new_database(postgres)


@pytest.fixture
def served(site: Site) -> Iterator[tuple[Site, str]]:  # noqa: F811
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap.sh installs it)")
    port = free_port()
    with serving(site, port):
        yield site, f"http://127.0.0.1:{port}"


@contextmanager
def serving(running: Site, port: int) -> Iterator[None]:
    """The site's app under uvicorn on a real port, for the browser."""
    server = uvicorn.Server(uvicorn.Config(running.app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: server.started, 10)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_member_guide_in_a_browser(served: tuple[Site, str], tmp_path: Path) -> None:
    door_site, base = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    # The phone's camera sees the QR by the door: the §8 URL of this door on this service.
    camera = write_y4m(tmp_path / "door-qr.y4m", [qr_frame(f"{base}/s/{STORE}/{DOOR}")] * 5)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"])

        def phone() -> Any:
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP",
                                          permissions=["camera"])
            return context.new_page()

        aiko, ben, chika, operator = phone(), phone(), phone(), phone()

        def log_in(page: Any, member: str, password: str, target: str) -> None:
            page.goto(f"{base}{target}")
            page.fill("input[name=member]", member)
            page.fill("input[name=password]", password)
            page.click("form[action='/login'] button[type=submit]")

        def shot(page: Any, name: str) -> None:
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

        def symbol(page: Any, wanted: str) -> None:
            # Playwright's own matching: the pages' CSP (no eval) refuses a string predicate.
            playwright.expect(page.locator(f"td[data-store={STORE}]")).to_have_text(wanted, timeout=15_000)

        # Log in, scan the QR by the entrance in the page (the camera), land on that door's page.
        log_in(aiko, "m-1", "correct horse", "/")
        aiko.click("a[href='/scan']")
        aiko.wait_for_url(f"{base}/s/{STORE}/{DOOR}", timeout=15_000)
        aiko.wait_for_selector("button[data-act=check_in]")
        shot(aiko, "01-door-page-after-scan")
        log_in(ben, "m-2", "second horse", "/")
        assert ben.inner_text(f"td[data-store={STORE}]").strip() in ("○", "?")
        shot(ben, "02-vacancy-before")
        log_in(operator, "op", "operator pass", "/console")
        operator.wait_for_selector(f"tr[data-door='{STORE}/{DOOR}']")

        aiko.click("button[data-act=check_in]")  # 入店する
        assert "入店しました" in aiko.inner_text("[role=status]")
        assert wait_for(door_site.board.relay, 5), "the simulated door unlocked"
        shot(aiko, "03-checked-in")
        symbol(ben, "△")  # Ben's board changes by itself (server-sent events): no reload
        assert "残りわずか" in ben.inner_text(f"td[data-words={STORE}]"), "the words follow the symbol"
        shot(ben, "04-vacancy-after")
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.wait_for_selector("[data-deadline] [data-left]")
        assert aiko.get_attribute("[data-deadline]", "data-phase") == "ok"  # the 2-hour countdown runs
        until = aiko.inner_text("time[data-local-time]")
        assert re.fullmatch(r"\d{2}:\d{2}", until.strip()), f"the stay's end, local: {until!r}"

        # Ben takes the second seat; Chika, the third member, sees × and is turned away.
        log_in(chika, "m-3", "third horse", "/")
        ben.goto(f"{base}/s/{STORE}/{DOOR}")
        ben.click("button[data-act=check_in]")
        assert "入店しました" in ben.inner_text("[role=status]")
        symbol(chika, "×")
        assert "満席" in chika.inner_text(f"td[data-words={STORE}]")
        shot(chika, "05-third-member-sees-full")
        chika.goto(f"{base}/s/{STORE}/{DOOR}")
        chika.click("button[data-act=check_in]")
        assert "満席です" in chika.inner_text("[role=status]")
        shot(chika, "06-third-member-refused")

        # 開錠する during the stay, then the two-step checkout.
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=unlock]")
        assert "開錠しました" in aiko.inner_text("[role=status]")
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=checkout_begin]")  # チェックアウト手続きに進む
        shot(aiko, "07-checkout-begun")
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.wait_for_selector("button[data-act=checkout]", timeout=15_000)
        stale = aiko.context.new_page()  # the same page left open in another tab
        stale.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=unlock]")  # 開錠する at the door, go out
        aiko.goto(f"{base}/s/{STORE}/{DOOR}")
        aiko.click("button[data-act=checkout]")  # チェックアウトする
        assert "チェックアウトしました" in aiko.inner_text("[role=status]")
        shot(aiko, "08-checked-out")
        stale.click("button[data-act=unlock]")  # after checkout the door no longer opens
        assert "チェックアウト後" in stale.inner_text("[role=status]")
        shot(stale, "09-unlock-after-checkout-refused")

        # The bolt jams: Ben's 開錠する is answered, the lock does not move, the page turns into the
        # unlock-trouble screen, and the operator's console shows the alarm without a reload.
        assert wait_for(lambda: door_site.board.request(op="state")["bolt"] == "extended", 10)
        door_site.board.request(op="jam", jammed=True)  # jammed shut
        ben.goto(f"{base}/s/{STORE}/{DOOR}")
        ben.click("button[data-act=unlock]")
        ben.wait_for_selector("[data-trouble]", timeout=15_000)
        assert "サポートセンターへお電話ください" in ben.inner_text("body")  # 開錠する: either way out
        shot(ben, "10-unlock-fault-trouble")
        operator.wait_for_selector("tr[data-alarm=unlock_fault]", timeout=15_000)
        shot(operator, "11-console-alarm")
        mails = door_site.mailbox.wait(1, 15)
        assert [m["Subject"] for _, m in mails] == [f"[officepass] unlock_fault at {STORE}/{DOOR}"]
        door_site.board.request(op="jam", jammed=False)

        # Chika switches to English; a door that does not answer within 5 s: the same screen.
        chika.goto(f"{base}/s/{STORE}/back")
        chika.click("button[data-lang=en]")
        assert "Check in" in chika.inner_text("button[data-act=check_in]")
        assert "入店する" not in chika.inner_text("button[data-act=check_in]")
        chika.click("button[data-act=check_in]")
        chika.wait_for_selector("[data-trouble]", timeout=15_000)
        body = chika.inner_text("body")
        assert "another office nearby" in body and "call the support" not in body, "entering: that advice"
        shot(chika, "12-no-answer-trouble-english")
        browser.close()
    for name in ("01-door-page-after-scan", "06-third-member-refused", "10-unlock-fault-trouble",
                 "12-no-answer-trouble-english"):
        assert (SHOTS / f"{name}.png").stat().st_size > 1000


AXE = ROOT / "tests" / "vendor" / "axe.min.js"  # axe-core from npm (scripts/vendor-js.sh), MPL-2.0


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands (WCAG 2 A/AA rules,
    colour contrast included). The test's browser context bypasses the page's CSP so that the
    checker can be injected: the service itself never serves it."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {runOnly: {type: 'tag', values: "
                           "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_every_member_page_and_the_console_pass_axe_and_the_charts_show_the_day(
        served: tuple[Site, str]) -> None:
    door_site, base = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    door_site.as_member("m-1", "correct horse")  # the day the charts show: in, out and back, out
    for act in ("check_in", "exit", "unlock", "checkout_begin", "exit", "checkout"):
        if act == "exit":
            door_site.board.press()  # the member goes out through the door
            assert wait_for(lambda: not door_site.board.relay(), 5)
        else:
            assert door_site.press(act)[0] == 200, act
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        problems: dict[str, list[str]] = {}
        for who, password, pages in (
                ("m-2", "second horse", ["/login", "/", f"/s/{STORE}/{DOOR}", f"/s/{STORE}/{DOOR}/code",
                                         "/scan", f"/s/{STORE}/{DOOR}/trouble?act=check_in"]),
                ("op", "operator pass", ["/console", f"/console/stores/{STORE}",
                                         f"/console/doors/{STORE}/{DOOR}", f"/console/charts/{STORE}",
                                         "/console/charts", "/console/integrations"])):
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP",
                                          bypass_csp=True)
            page = context.new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=member]", who)
            page.fill("input[name=password]", password)
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_load_state()
            for path in pages:
                page.goto(f"{base}{path}")
                page.wait_for_load_state()
                found = axe_violations(page)
                if found:
                    problems[f"{who} {path}"] = found
                if "/charts/" in path:
                    page.screenshot(path=str(SHOTS / "console-charts-store-day.png"), full_page=True)
            if who == "op":  # the operator finds a member, opens a door's page and its store's charts
                page.goto(f"{base}/console")
                page.fill("input[name=member_q]", "Ben")
                page.click("button[data-member-search]")
                page.wait_for_url(re.compile(r".*member_q=Ben.*"))
                rows = page.locator("tr[data-member]").all()
                assert [m.get_attribute("data-member") for m in rows] == ["m-2"]
                page.click(f"a[href='/console/doors/{STORE}/{DOOR}']")
                page.wait_for_selector(f"h1[data-place='{STORE}/{DOOR}']")
                assert "front: ok" in page.inner_text(f"section[data-door='{STORE}/{DOOR}']")
                page.click("a[data-charts]")
                page.wait_for_selector("svg[data-chart=occupancy]")
                assert page.locator("svg[data-chart]").count() == 3
            # Keyboard alone: tab to the first button and press it.
            if who == "m-2":
                page.goto(f"{base}/s/{STORE}/{DOOR}")
                for _ in range(30):
                    page.keyboard.press("Tab")
                    if page.evaluate("document.activeElement.dataset.act") == "check_in":
                        break
                else:
                    problems["keyboard"] = ["入店する cannot be reached with Tab"]
                page.keyboard.press("Enter")
                page.wait_for_selector("[role=status]")
                assert "入店しました" in page.inner_text("[role=status]")
            context.close()
        browser.close()
    assert problems == {}, "\n".join(f"{where}: {found}" for where, found in problems.items())
