"""Presence codes (contract §9): the codes and their window arithmetic, the secret file, the
configuration, the pure decision with presence, the door core with real commands, and the
framebuffer driver written to a file standing in for /dev/fb0 and read back through the door's own
QR decoder."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from controller.admission import Admission, AdmissionRules, Decided, Moment, admit
from controller.config import ConfigError
from controller.core import verifier_for
from controller.decision import CodeRejected
from controller.presence import PresenceSecretError, load_secret
from controller.signage import render_screen
from drivers.decode import DecodePipeline
from drivers.display import DisplayError, FramebufferScreen, read_geometry, unpack
from drivers.presentation import PresentationWindow
from tests.helpers import NOW, PRIVATE, code, make_config
from tests.rig import Relay
from tests.test_core import Clock, make_core
from tests.test_decision import POLICY
from wire.codes import MalformedCode, mint_code, parse_code
from wire.presence import PresenceCodes, screen_url
from wire.vocab import Act, Deny, Side

SECRET = bytes(range(32))
PRESENCE = {"url": "https://pass.example/s/{store}/{door}", "window_seconds": 10, "accept_seconds": 30}


def codes(store: str = "shinjuku-3", door: str = "main") -> PresenceCodes:
    return PresenceCodes(SECRET, store, door, 10, 30)


def test_the_code_is_the_contracts_hmac() -> None:
    t = 1_800_000_005.0
    n = int(t // 10)
    digest = hmac.new(SECRET, f"shinjuku-3/main/{n}".encode(), hashlib.sha256).digest()
    assert codes().current(t) == base64.b32encode(digest).decode()[:10]
    assert len(codes().current(t)) == 10 and codes().current(t) != codes().current(t + 10)
    assert codes().seconds_left(t) == pytest.approx(5.0)
    assert "000102" not in repr(codes()) and "secret" not in repr(codes()).lower()


def test_a_code_is_accepted_while_its_window_overlaps_the_last_accept_seconds() -> None:
    shown_at = 1_800_000_003.0  # window [..000, ..010)
    shown = codes().current(shown_at)
    assert codes().accepts(shown, shown_at)
    assert codes().accepts(shown, shown_at + 36.9), "the window ended 30 s before ..040: still overlaps"
    assert not codes().accepts(shown, shown_at + 37.0), "a photo from over half a minute before"
    assert not codes().accepts(shown, shown_at - 10), "not a code of the future"
    assert not codes().accepts(codes(door="back").current(shown_at), shown_at), "another door's code"
    assert not codes().accepts(None, shown_at) and not codes().accepts("", shown_at)
    assert screen_url("https://p.example/s/a/b", "ABC") == "https://p.example/s/a/b?pc=ABC"
    assert screen_url("https://p.example/d?x=1", "ABC") == "https://p.example/d?x=1&pc=ABC"


def test_the_secret_is_made_once_0600_and_never_loose(tmp_path: Path) -> None:
    first = load_secret(tmp_path)
    path = tmp_path / "presence.key"
    assert len(first) == 32 and oct(path.stat().st_mode & 0o777) == "0o600"
    os.chmod(path, 0o644)
    assert load_secret(tmp_path) == first and oct(path.stat().st_mode & 0o777) == "0o600"
    path.write_bytes(b"short")
    with pytest.raises(PresenceSecretError, match=r"presence\.key: the presence secret is 5 bytes"):
        load_secret(tmp_path)
    with pytest.raises(PresenceSecretError, match="cannot create"):
        load_secret(tmp_path / "missing-dir")


def test_presence_config_names_each_bad_key(tmp_path: Path) -> None:
    config = make_config(tmp_path, presence=dict(PRESENCE))
    assert config.presence is not None
    assert config.presence.url == "https://pass.example/s/shinjuku-3/main"
    assert config.presence.require == {Act.CHECK_IN, Act.UNLOCK} and config.presence.framebuffer is None
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, presence={"url": "ftp://x/{shop}", "window_seconds": 4, "accept_seconds": 400,
                                        "require": ["check_in", "checkout"], "display": "hdmi", "colour": 1})
    text = str(caught.value)
    for problem in ("presence.url: must be an http:// or https:// URL",
                    "presence.window_seconds: must be at least 5",
                    "presence.accept_seconds: must be at most 300",
                    "presence.require: must not hold checkout_begin",
                    'presence.display: must be "none" or "fb:/dev/fbN"', "presence.colour: unknown key"):
        assert problem in text
    with pytest.raises(ConfigError, match=r"accept_seconds: must be at least presence\.window_seconds"):
        make_config(tmp_path, presence={**PRESENCE, "window_seconds": 20, "accept_seconds": 10})
    with pytest.raises(ConfigError, match=r"presence.url: may hold only the placeholders"):
        make_config(tmp_path, presence={**PRESENCE, "url": "https://p.example/{shop}"})
    with pytest.raises(ConfigError, match=r"presence\.url: required key is missing"):
        make_config(tmp_path, presence={})


def test_the_pc_claim_is_text_of_1_to_32_characters() -> None:
    def minted(pc: object) -> str:
        return mint_code(PRIVATE["k1"], kid="k1", issuer="officepass", member="m-1", iat=NOW, exp=NOW + 60,
                         cti=secrets.token_bytes(16), act="check_in", presence=pc)  # type: ignore[arg-type]

    assert parse_code(minted("ABCDEFGHIJ")).presence == "ABCDEFGHIJ"
    for bad in (12345, "", "X" * 33, b"ABCDEFGHIJ"):
        with pytest.raises(MalformedCode, match="pc must be text of 1-32 characters"):
            parse_code(minted(bad))


PRESENT = replace(POLICY, presence_required=frozenset({Act.CHECK_IN, Act.UNLOCK}))


SECRET = b"s" * 32


def _command(act: str, presence: str | None = None) -> str:
    return mint_code(PRIVATE["k1"], kid="k1", issuer="officepass", member="m1", iat=NOW, exp=NOW + 15,
                     cti=secrets.token_bytes(16), act=act, presence=presence)


def _admit(text: str, side: Side, required: frozenset[Act], t: float) -> Admission:
    config = make_config(Path("/nonexistent"))
    rules = AdmissionRules(verifier_for(config), False, PresenceCodes(SECRET, "shinjuku-3", "main", 10, 30),
                           required)
    return admit(text, "cloud" if side is Side.REMOTE else "front", side, rules,
                 Moment(t, 100.0, frozenset(), lambda: True), lambda _cti: None, PresentationWindow())


@pytest.mark.parametrize("act", [Act.CHECK_IN, Act.UNLOCK])
def test_admission_refuses_an_app_unlock_without_presence(act: Act) -> None:
    t = float(NOW)
    shown = PresenceCodes(SECRET, "shinjuku-3", "main", 10, 30).current(t - 5)
    refused = _admit(_command(act), Side.REMOTE, PRESENT.presence_required, t)
    assert isinstance(refused, Decided) and isinstance(refused.request, CodeRejected)
    assert refused.request.reason is Deny.NOT_PRESENT
    accepted = _admit(_command(act, shown), Side.REMOTE, PRESENT.presence_required, t)
    assert isinstance(accepted, Decided) and accepted.admitted


def test_checking_out_and_codes_at_the_door_never_need_presence() -> None:
    t = float(NOW)
    for act in (Act.CHECKOUT_BEGIN, Act.CHECKOUT):
        admitted = _admit(_command(act), Side.REMOTE, PRESENT.presence_required, t)
        assert isinstance(admitted, Decided) and admitted.admitted, act
    camera = _admit(code("m1", iat=NOW), Side.ENTRY, PRESENT.presence_required, t)
    assert isinstance(camera, Decided) and camera.admitted
    no_presence = _admit(_command("check_in"), Side.REMOTE, frozenset(), t)
    assert isinstance(no_presence, Decided) and no_presence.admitted, "without [presence] nothing changes"


def test_the_door_core_checks_the_claim_against_what_its_screen_showed(tmp_path: Path) -> None:
    config = make_config(tmp_path, presence=dict(PRESENCE))
    wall, mono = Clock(NOW), Clock(100.0)
    relay = Relay(config)
    core = make_core(config, wall, mono, relay, presence=codes())
    try:
        def command(act: str, pc: str | None, member: str = "m-1") -> tuple[bool, str | None]:
            text = mint_code(PRIVATE["k1"], kid="k1", issuer="officepass", member=member, iat=int(wall.t),
                             exp=int(wall.t) + 60, cti=secrets.token_bytes(16), act=act, presence=pc)
            decision = core.present(text, "cloud", Side.REMOTE).decision
            assert decision is not None
            return decision.ok, decision.reason

        photo = codes().current(wall.t)  # a member photographs the screen
        wall.t += 60
        mono.t += 60
        assert command("check_in", photo) == (False, Deny.NOT_PRESENT), "the photo is a minute old"
        assert command("check_in", None) == (False, Deny.NOT_PRESENT)
        assert command("check_in", codes(door="back").current(wall.t)) == (False, Deny.NOT_PRESENT)
        assert command("check_in", codes().current(wall.t)) == (True, None), "scanned just now"
        assert command("checkout", None) == (True, None), "checking out never needs presence"
        assert core.present(code("m-2"), "front", Side.ENTRY).decision.ok, "a code at the camera"  # type: ignore[union-attr]
        denied = [e for e in core.journal.recent_events(20) if e.type == "denied"]
        assert {e.reason for e in denied} == {Deny.NOT_PRESENT}
    finally:
        relay.close()


def _fake_fb(tmp_path: Path, width: int, height: int, bpp: int, pad: int = 0) -> tuple[str, Path]:
    sysfs = tmp_path / "sys"
    (sysfs / "fb0").mkdir(parents=True)
    stride = width * bpp // 8 + pad
    (sysfs / "fb0" / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "fb0" / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "fb0" / "stride").write_text(f"{stride}\n")
    device = tmp_path / "fb0"
    device.write_bytes(b"\0" * stride * height)
    return str(device), sysfs


@pytest.mark.parametrize(("bpp", "pad"), [(16, 0), (32, 0), (16, 64)])
def test_the_framebuffer_shows_a_code_the_door_reads_back(tmp_path: Path, bpp: int, pad: int) -> None:
    device, sysfs = _fake_fb(tmp_path, 480, 320, bpp, pad)
    screen = FramebufferScreen(device, sysfs)
    url = screen_url("https://pass.example/s/shinjuku-3/main", codes().current(NOW))
    picture = render_screen(screen.width, screen.height, "shinjuku-3", "main", url, 0.5)
    screen.show(picture, url)
    screen.close()
    geometry = read_geometry(device, sysfs)
    back = unpack(Path(device).read_bytes(), geometry)
    tolerance = 8 if bpp == 16 else 0  # RGB565 keeps 5-6 bits a channel
    assert np.abs(back.astype(int) - picture.astype(int)).max() <= tolerance
    assert DecodePipeline().decode(back[..., ::-1].copy()) == [url]


def test_a_framebuffer_that_cannot_be_used_is_named(tmp_path: Path) -> None:
    device, sysfs = _fake_fb(tmp_path, 480, 320, 24)
    with pytest.raises(DisplayError, match=r"bits_per_pixel: 24 bits per pixel"):
        FramebufferScreen(device, sysfs)
    with pytest.raises(DisplayError, match=r"fb7/virtual_size: cannot read"):
        FramebufferScreen(str(tmp_path / "fb7"), sysfs)
    device, sysfs = _fake_fb(tmp_path / "b", 480, 320, 32)
    os.chmod(device, 0o000)
    if os.geteuid() != 0:  # root opens it anyway
        with pytest.raises(DisplayError, match="cannot open"):
            FramebufferScreen(device, sysfs)
    os.chmod(device, 0o600)
    screen = FramebufferScreen(device, sysfs)
    with pytest.raises(ValueError, match="image is"):
        screen.show(np.zeros((10, 10, 3), dtype=np.uint8), None)
    screen.close()


def _config_file(tmp_path: Path, presence: dict[str, object] | None) -> Path:
    from tests.helpers import config_doc, toml_text

    doc = config_doc(storage={"path": str(tmp_path / "doorctl.db")})
    if presence is not None:
        doc["presence"] = presence
    path = tmp_path / "door.toml"
    path.write_text(toml_text(doc))
    return path


def test_the_poster_as_png_and_pdf_reads_back_to_the_door_page(tmp_path: Path) -> None:
    import re
    import zlib

    import cv2

    from tests.procs import doorctl

    config = _config_file(tmp_path, dict(PRESENCE))
    url = "https://pass.example/s/shinjuku-3/main"
    png = tmp_path / "poster.png"
    res = doorctl("poster", "--config", str(config), "--out", str(png))
    assert res.returncode == 0, res.stderr
    picture = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert picture.shape == (2480, 1748), "A5 at 300 dpi"
    assert DecodePipeline().decode(cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)) == [url]

    pdf = tmp_path / "poster.pdf"
    assert doorctl("poster", "--config", str(config), "--out", str(pdf)).returncode == 0
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-1.4") and b"/MediaBox [0 0 419.53 595.28]" in data  # A5 in points
    found = re.search(rb"/Width (\d+) /Height (\d+).*?stream\n(.*)\nendstream", data, re.S)
    assert found is not None
    width, height = int(found.group(1)), int(found.group(2))
    image = np.frombuffer(zlib.decompress(found.group(3)), dtype=np.uint8).reshape(height, width)
    assert DecodePipeline().decode(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)) == [url]


def test_the_poster_says_what_it_needs(tmp_path: Path) -> None:
    from tests.procs import doorctl

    config = _config_file(tmp_path, None)
    res = doorctl("poster", "--config", str(config), "--out", str(tmp_path / "p.png"))
    assert res.returncode == 2 and "presence.url in the config, or --url" in res.stderr
    res = doorctl("poster", "--config", str(config), "--out", str(tmp_path / "p.jpg"),
                  "--url", "https://x.example/s/a/b")
    assert res.returncode == 2 and "must end in .pdf or .png" in res.stderr
    res = doorctl("poster", "--config", str(config), "--out", str(tmp_path / "no" / "p.png"),
                  "--url", "https://x.example/s/a/b")
    assert res.returncode == 1 and "cannot write" in res.stderr


def test_doctor_checks_the_screen(tmp_path: Path) -> None:
    from controller.doctor import check_display

    device, sysfs = _fake_fb(tmp_path, 480, 320, 16)  # /dev/fb0 under tmp_path, its sysfs beside
    devices = Path(device).parent
    config = make_config(tmp_path, presence={**PRESENCE, "display": "fb:/dev/fb0"})
    (found,) = check_display(config, sysfs=sysfs, devices=devices)
    assert (found.level, found.what) == ("ok", "screen /dev/fb0: 480x320 RGB565")
    missing = make_config(tmp_path, presence={**PRESENCE, "display": "fb:/dev/fb3"})
    (found,) = check_display(missing, sysfs=sysfs, devices=devices)
    assert found.level == "fail" and "fb3/virtual_size: cannot read" in found.what and "overlay" in found.fix
    if os.geteuid() != 0:  # root may write anything
        os.chmod(device, 0o400)
        (found,) = check_display(config, sysfs=sysfs, devices=devices)
        assert found.level == "fail" and "cannot be written" in found.what
    none = make_config(tmp_path, presence={**PRESENCE, "display": "none"})
    (warning,) = check_display(none)
    assert warning.level == "warn" and "always refused not_present" in warning.what
    quiet = make_config(tmp_path, presence={**PRESENCE, "display": "none", "require": []})
    assert [f.level for f in check_display(quiet)] == ["ok"]
    load_secret(tmp_path)
    os.chmod(tmp_path / "presence.key", 0o640)
    first = check_display(quiet)[0]
    assert first.level == "fail" and "readable by others" in first.what


def test_the_display_redraws_only_the_bar_and_matches_a_whole_picture(tmp_path: Path) -> None:
    from controller.presence_display import BAR_STEPS, PresenceDisplay
    from drivers.display import pack

    device, sysfs = _fake_fb(tmp_path, 480, 320, 32)
    screen = FramebufferScreen(device, sysfs)
    clock = Clock(NOW + 0.01)  # just into a window: the bar is full
    online = [True]
    display = PresenceDisplay(screen, codes(), "https://pass.example/s/shinjuku-3/main", "shinjuku-3", "main",
                              clock, online=lambda: online[0])
    geometry = read_geometry(device, sysfs)

    def expected(text: str | None, fraction: float) -> bytes:
        return pack(render_screen(480, 320, "shinjuku-3", "main", text, fraction), geometry)

    url = screen_url("https://pass.example/s/shinjuku-3/main", codes().current(clock.t))
    display.refresh()
    first = display.frames
    step = int(codes().seconds_left(clock.t) / 10 * BAR_STEPS) / BAR_STEPS
    assert Path(device).read_bytes() == expected(url, step)
    display.refresh()
    assert display.frames == first, "nothing changed: no new picture"
    clock.t += 3.0  # the bar steps down: only its rows are written
    with open(device, "r+b") as fb:
        fb.write(b"\x01\x02\x03\x04")  # a mark in the top row, far from the bar
    display.refresh()
    step = int(codes().seconds_left(clock.t) / 10 * BAR_STEPS) / BAR_STEPS
    now, whole = Path(device).read_bytes(), expected(url, step)
    assert now[:4] == b"\x01\x02\x03\x04", "the top row was not rewritten"
    assert now[4:] == whole[4:], "and the rest is exactly the whole picture"
    clock.t += 7.5  # a new window: a new code, the whole picture
    display.refresh()
    url = screen_url("https://pass.example/s/shinjuku-3/main", codes().current(clock.t))
    step = int(codes().seconds_left(clock.t) / 10 * BAR_STEPS) / BAR_STEPS
    assert Path(device).read_bytes() == expected(url, step)
    online[0] = False  # the cloud link is down: the code is hidden
    display.refresh()
    assert Path(device).read_bytes() == expected(None, 0.0)
    assert DecodePipeline().decode(unpack(Path(device).read_bytes(), geometry)[..., ::-1].copy()) == []
    screen.close()
