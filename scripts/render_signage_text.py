"""Render the fixed Japanese lines of the door's screen and poster into PNG files under
controller/assets/ (`make signage-text`; the results are committed). A door draws its pictures with
OpenCV, whose fonts have no Japanese, and a Pi need not carry a CJK font: these few fixed lines come
as pictures instead. Rendered by Debian's chromium through Playwright (dev tools only), with a CJK
font the machine has (fonts-noto-cjk or fonts-droid-fallback)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.signage import JAPANESE_LINES  # noqa: E402

PIXELS = 96  # the font size the lines are drawn at; the door scales them down


def main() -> int:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    out = ROOT / "controller" / "assets"
    out.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(device_scale_factor=1)
        for name, text in JAPANESE_LINES.items():
            style = (f"display:inline-block;padding:8px;font:{PIXELS}px 'Noto Sans CJK JP','Droid Sans "
                     "Fallback',sans-serif;color:#000;white-space:nowrap")
            page.set_content(f"<html><body style='margin:0;background:#fff'><span id=t style=\"{style}\">"
                             f"{text}</span></body></html>")
            page.locator("#t").screenshot(path=str(out / f"{name}.png"))
            print(f"{name}.png: {text}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
