"""`doorctl` command line (contract §6)."""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from controller.config import (
    DEFAULT_ISSUER,
    DEFAULT_PATH,
    Config,
    ConfigError,
    load_config,
    load_mqtt_credentials,
)
from wire.vocab import Act

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _load_or_report(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"doorctl: configuration {path} has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return EXIT_USAGE
    if config.mqtt is not None:
        try:
            load_mqtt_credentials(config.mqtt)  # every file, loaded as the daemon loads it
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem)
            return EXIT_USAGE
    print(f"{args.config}: ok")
    return EXIT_OK


def _codes_from(args_codes: Sequence[str]) -> Iterable[str]:
    if args_codes:
        yield from args_codes
        return
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if line:
            yield line


def cmd_verify_code(args: argparse.Namespace) -> int:
    from controller.core import verifier_for
    from wire.codes import MEMBER_RE

    # `--revoked A B CODE...`: argparse hands the codes to --revoked too. A member id never holds
    # a ':' and a code always does, so give back to the codes what cannot be a member id.
    revoked_ids = [r for r in args.revoked or () if MEMBER_RE.fullmatch(r)]
    codes = [r for r in args.revoked or () if not MEMBER_RE.fullmatch(r)] + list(args.codes)
    config = _load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    verifier = verifier_for(config)
    now = args.at if args.at is not None else time.time()
    revoked = frozenset(revoked_ids)
    for text in _codes_from(codes):
        verdict = verifier.verify(text, now, revoked=revoked)
        if verdict.ok and verdict.code is not None:
            act = f" {verdict.code.act}" if verdict.code.act else ""
            print(f"ok {verdict.code.member}{act}")
        else:
            print(f"denied {verdict.reason}")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    private_b64 = base64.b64encode(private).decode()
    public_b64 = base64.b64encode(public).decode()
    if args.out:
        out = Path(args.out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(private_b64 + "\n")
        print(f"# private key written to {out} (mode 0600); keep it off the door")
    else:
        print(f"# private key (keep it off the door): {private_b64}")
    print("# add to [credentials.keys] on every door that should trust it:")
    print(f'{args.kid} = "{public_b64}"')
    return EXIT_OK


def _read_private_key(args: argparse.Namespace) -> bytes:
    text = args.private_key
    if args.key_file:
        text = Path(args.key_file).read_text().strip()
    if not text:
        raise ValueError("give --private-key BASE64 or --key-file FILE")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("private key is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"private key must be 32 raw bytes, got {len(raw)}")
    return raw


def cmd_issue_code(args: argparse.Namespace) -> int:
    from wire.codes import mint_code

    try:
        private = _read_private_key(args)
    except (ValueError, OSError) as exc:
        print(f"doorctl issue-code: {exc}", file=sys.stderr)
        return EXIT_USAGE
    iat = int(args.iat if args.iat is not None else time.time())
    cti = bytes.fromhex(args.cti) if args.cti else secrets.token_bytes(16)
    text = mint_code(
        private,
        kid=args.kid,
        issuer=args.issuer,
        member=args.member,
        iat=iat,
        exp=iat + args.ttl,
        cti=cti,
        stores=args.store or None,
        act=args.act,
    )
    print(text)
    if args.png:
        import segno

        segno.make_qr(text, error="m").save(args.png, scale=8, border=4)
    return EXIT_OK


def cmd_issue_revocation(args: argparse.Namespace) -> int:
    from wire.codes import MEMBER_RE, mint_revocation

    try:
        private = _read_private_key(args)
    except (ValueError, OSError) as exc:
        print(f"doorctl issue-revocation: {exc}", file=sys.stderr)
        return EXIT_USAGE
    bad = [m for m in args.members if not MEMBER_RE.fullmatch(m)]
    if bad:
        print(f"doorctl issue-revocation: not member ids: {', '.join(bad)}", file=sys.stderr)
        return EXIT_USAGE
    iat = int(args.iat if args.iat is not None else time.time())
    print(mint_revocation(private, kid=args.kid, issuer=args.issuer, iat=iat, version=args.version,
                          members=args.members))
    return EXIT_OK


def _sim_socket(config: Config, args: argparse.Namespace) -> Path:
    from drivers.platform import default_sim_socket

    return Path(args.sim_socket) if args.sim_socket else default_sim_socket(config.storage.path)


def cmd_run(args: argparse.Namespace) -> int:
    from controller.daemon import AlreadyRunning, run_daemon, setup_logging, take_instance_lock
    from controller.remote_config import RemoteConfig, load_effective
    from drivers.platform import select_platform

    try:
        effective = load_effective(args.config)
    except ConfigError as exc:
        print(f"doorctl: configuration {args.config} has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    config = effective.config
    setup_logging()
    if effective.problem is not None:
        logging.getLogger("doorctl").error("running on the file alone: %s", effective.problem)
    try:
        instance = take_instance_lock(config.storage.path)
    except AlreadyRunning as exc:
        print(f"doorctl run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"doorctl run: cannot take the instance lock: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        platform = select_platform(config.lock.wiring, config.readers, sim=args.sim,
                                   sim_socket=_sim_socket(config, args))
    except Exception as exc:  # no GPIO access, no lgpio, a board socket we cannot bind...
        print(f"doorctl run: cannot open the hardware: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return run_daemon(config, platform, RemoteConfig(effective))
    finally:
        os.close(instance)


def cmd_relay_off(args: argparse.Namespace) -> int:
    """Drive the relay to its off level and exit (systemd's ExecStopPost)."""
    from drivers.gpio import make_relay
    from drivers.platform import select_platform, sim_board_answers

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    if args.sim:
        path = _sim_socket(config, args)
        if not sim_board_answers(path):
            print(f"doorctl relay-off: no simulated board on {path}: no relay is driven")
            return EXIT_OK
    try:
        platform = select_platform(config.lock.wiring, config.readers, sim=args.sim,
                                   sim_socket=_sim_socket(config, args))
        relay = make_relay(config.lock.wiring, platform.pin_factory)
        relay.off()
    except Exception as exc:
        print(f"doorctl relay-off: could not drive {config.lock.relay_pin} off: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"relay {config.lock.relay_pin} off")
    return EXIT_OK


def cmd_sim(args: argparse.Namespace) -> int:
    """Run the simulated board as its own process until SIGTERM/SIGINT."""
    import signal
    import threading

    from drivers.platform import serve_sim_board

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    path = _sim_socket(config, args)
    close = serve_sim_board(config.lock.wiring, config.readers, path)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"simulated board ready on {path}", flush=True)
    stop.wait()
    close()
    return EXIT_OK


def cmd_poster(args: argparse.Namespace) -> int:
    """The static poster for a door without a screen: A5, the store, the QR of the door's page
    (contract §8, without a presence code) and the guide's line; PDF or PNG by the file's name."""
    import cv2

    from controller.pdf import picture_pdf
    from controller.signage import A5_MM, render_poster

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    url = args.url or (config.presence.url if config.presence is not None else None)
    if url is None:
        print("doorctl poster: the door's page address comes from presence.url in the config, or --url",
              file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    kind = out.suffix.lower()
    if kind not in (".pdf", ".png"):
        print(f"doorctl poster: {out} must end in .pdf or .png", file=sys.stderr)
        return EXIT_USAGE
    picture = render_poster(config.door.store, config.door.name, url)
    try:
        if kind == ".pdf":
            out.write_bytes(picture_pdf(picture, A5_MM))
        elif not cv2.imwrite(str(out), picture):
            raise OSError("the PNG encoder refused it")
    except OSError as exc:
        print(f"doorctl poster: cannot write {out}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{out}: A5 poster for {config.door.store}/{config.door.name} -> {url}")
    return EXIT_OK


def cmd_decode(args: argparse.Namespace) -> int:
    """Run the door's decode pipeline on still images: one line per image."""
    import json

    import cv2

    from drivers.decode import DecodePipeline

    pipeline = DecodePipeline()
    status = EXIT_OK
    for path in args.images:
        exists = Path(path).is_file()
        image = cv2.imread(path) if exists else None
        start = time.perf_counter()
        if image is None:
            why = "not a readable image" if exists else "no such file"
            print(f"doorctl decode: {path}: {why}", file=sys.stderr)
            texts: list[str] = []
            status = EXIT_FAILED
        else:
            texts = pipeline.decode(image)
        ms = (time.perf_counter() - start) * 1000
        text = texts[0] if texts else None
        if args.json:
            print(json.dumps({"image": path, "text": text, "ms": round(ms, 3)}, ensure_ascii=False))
        else:
            print(text if text is not None else "none")
    return status


def cmd_status(args: argparse.Namespace) -> int:
    """Ask the running daemon over its local socket and print what a technician needs."""
    import json

    from controller.status_socket import ALARM_ADVICE, query, status_problem, status_socket_path

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    path = status_socket_path(config.storage.path)
    try:
        status = query(path)
    except (OSError, ValueError) as exc:
        print(f"doorctl status: the daemon does not answer on {path}: {exc}\n"
              "  is it running?  systemctl status doorctl; journalctl -u doorctl -n 50", file=sys.stderr)
        return EXIT_FAILED
    problem = status_problem(status)
    if problem is not None:
        if args.json:
            print(json.dumps({"error": problem}, ensure_ascii=False))
        print(f"doorctl status: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
        return EXIT_OK
    seats = status["seats"]
    print(f"door      {status['store']}/{status['door_name']}  ({status['platform']})")
    print(f"lock      {status['lock']}     door {status['door']}")
    print(f"alarms    {', '.join(status['alarms']) or '-'}")
    for alarm in status["alarms"]:
        if alarm in ALARM_ADVICE:
            print(f"          {alarm}: {ALARM_ADVICE[alarm]}")
    print(f"seats     {seats['symbol']}  {seats['occupied']}/{seats['capacity']} occupied")
    print(f"readers   {', '.join(f'{k}: {v}' for k, v in status['readers'].items()) or '-'}")
    print(f"cloud     {status['cloud'] or 'not configured'}   backlog {status['backlog']} events")
    print(f"clock     {'synchronized' if status['clock_synced'] else 'NOT synchronized'}")
    print("sessions")
    for s in status["sessions"] or []:
        print(f"  {s['member']:<20} {s['state']:<13} in {s['checked_in_at']}  deadline {s['deadline']}"
              f"{'  OVERDUE' if s['overdue'] else ''}")
    print("recent events")
    for e in status["recent_events"]:
        print(f"  #{e['seq']:<6} {e['ts']}  {e['type']:<17} {e['member'] or '-':<12} {e['source']}"
              f"{'  ' + e['reason'] if e['reason'] else ''}")
    return EXIT_OK


def cmd_enroll(args: argparse.Namespace) -> int:
    from controller.enroll import main as enroll_main

    return enroll_main(args.service, args.code, args.config, args.ca_file, restart=not args.no_restart)


def cmd_update_agent(args: argparse.Namespace) -> int:
    from controller.update_agent import main as agent_main

    return agent_main(args.config)


def cmd_doctor(args: argparse.Namespace) -> int:
    from controller.doctor import run_doctor

    return run_doctor(args.config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doorctl", description="Door controller for shared-office stores")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=str(DEFAULT_PATH), help=f"config file (default {DEFAULT_PATH})")

    p = sub.add_parser("run", help="run the door")
    with_config(p)
    p.add_argument("--sim", action="store_true", help="the hardware simulator replaces GPIO and readers")
    p.add_argument("--sim-socket", help="simulator control socket (default: sim.sock beside the journal)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("relay-off", help="drive the lock relay to its off level and exit")
    with_config(p)
    p.add_argument("--sim", action="store_true", help="the simulated board's relay")
    p.add_argument("--sim-socket", help="simulator control socket (default: sim.sock beside the journal)")
    p.set_defaults(func=cmd_relay_off)

    p = sub.add_parser("sim", help="run the simulated board as its own process")
    with_config(p)
    p.add_argument("--sim-socket", help="control socket (default: sim.sock beside the journal)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("decode", help="run the door's decode pipeline on still images")
    p.add_argument("--json", action="store_true", help="one JSON object per line: image, text, ms")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("poster", help="the printable A5 poster with the door's QR (PDF or PNG)")
    with_config(p)
    p.add_argument("--out", required=True, help="poster.pdf or poster.png")
    p.add_argument("--url", help="the door's page (default: presence.url of the config)")
    p.set_defaults(func=cmd_poster)

    p = sub.add_parser("enroll", help="join the fleet with a one-time code from `officepass door add`")
    with_config(p)
    p.add_argument("--service", required=True, help="the pass service, https://HOST")
    p.add_argument("--ca-file", help="trust this CA for the service's https (default: the system's)")
    p.add_argument("--no-restart", action="store_true", help="do not restart doorctl.service")
    p.add_argument("code", help="the enrollment code, XXXX-XXXX-XXXX-XXXX-XXXX")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("update-agent",
                       help="install, switch to and watch a release (root; doorctl-update.service)")
    with_config(p)
    p.set_defaults(func=cmd_update_agent)

    p = sub.add_parser("doctor", help="check config, keys, clock, broker, readers, GPIO, disk, power")
    with_config(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("status", help="ask the running daemon how the door is")
    with_config(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("check-config", help="check a configuration file")
    with_config(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("verify-code", help="check member codes against the configured keys")
    with_config(p)
    p.add_argument("--at", type=float, help="check as of this unix time (default now)")
    p.add_argument(
        "--revoked", nargs="+", action="extend", metavar="ID", help="treat these members as revoked"
    )
    p.add_argument("codes", nargs="*", help="codes (default: one a line on standard input)")
    p.set_defaults(func=cmd_verify_code)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair for minting codes")
    p.add_argument("--kid", default="k1", help="key name (kid) to print in the config line")
    p.add_argument("--out", help="write the private key here (mode 0600) instead of printing it")
    p.set_defaults(func=cmd_keygen)

    def signing(p: argparse.ArgumentParser) -> None:
        """The key, kid, issuer and iat every minting command takes."""
        key = p.add_mutually_exclusive_group(required=True)
        key.add_argument("--private-key", help="base64 raw 32-byte Ed25519 private key")
        key.add_argument("--key-file", help="file holding the base64 private key")
        p.add_argument("--kid", required=True)
        p.add_argument("--issuer", default=DEFAULT_ISSUER)
        p.add_argument("--iat", type=int, help="issued-at unix time (default now)")

    p = sub.add_parser("issue-revocation", help="mint a signed revocation list (pass service, tests)")
    signing(p)
    p.add_argument("--version", type=int, required=True, help="higher than the list doors hold now")
    p.add_argument("members", nargs="*", help="member ids to revoke")
    p.set_defaults(func=cmd_issue_revocation)

    p = sub.add_parser("issue-code", help="mint a member code (benches and tests; never on a door)")
    signing(p)
    p.add_argument("--member", required=True)
    p.add_argument("--act", choices=[str(a) for a in Act])
    p.add_argument("--ttl", type=int, default=120, help="seconds from iat to exp (default 120)")
    p.add_argument("--cti", help="code id as hex (default random 16 bytes)")
    p.add_argument("--store", nargs="+", action="extend", help="valid only at these store ids")
    p.add_argument("--png", help="also write the code as a QR image to this PNG file")
    p.set_defaults(func=cmd_issue_code)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
