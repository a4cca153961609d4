"""`officepass`: the pass service's command line (this part: keys, members, stores, the database)."""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from officepass.keys import KeyProblem, KeyRing
from wire.rules import DEFAULT_PREFIX

DEFAULT_KEYS = Path(os.environ.get("OFFICEPASS_KEYS", "/var/lib/officepass/keys"))
DEFAULT_DB = os.environ.get("OFFICEPASS_DB", "sqlite:////var/lib/officepass/officepass.db")


def cmd_keys_new(args: argparse.Namespace) -> int:
    try:
        key = KeyRing(Path(args.keys)).new(args.kid, activate=not args.inactive)
    except KeyProblem as exc:
        print(f"officepass keys new: {exc}", file=sys.stderr)
        return 2
    print(f"# private key in {args.keys}/{key.kid}.key (0600); {'active' if key.active else 'not active'}")
    print("# every door that should trust it, in [credentials.keys]:")
    print(f'{key.kid} = "{key.public_b64}"')
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    for key in KeyRing(Path(args.keys)).public_keys():
        print(f'{key.kid} = "{key.public_b64}"{"   # active" if key.active else ""}')
    return 0


def _db(url: str) -> sessionmaker:  # type: ignore[type-arg]  # Session is the default class
    from officepass.db import engine_for, migrate, sessions

    migrate(url)
    return sessions(engine_for(url))


def cmd_member_add(args: argparse.Namespace) -> int:
    from officepass.members import MemberProblem, add_member

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
    try:
        with _db(args.db).begin() as db:
            add_member(db, args.member, args.name or args.member, password, role=args.role)
    except MemberProblem as exc:
        print(f"officepass member add: {exc}", file=sys.stderr)
        return 2
    print(f"member {args.member} added ({args.role})")
    return 0


def cmd_member_disable(args: argparse.Namespace) -> int:
    from officepass.link import DoorLink
    from officepass.members import MemberProblem, disable_and_publish

    host, _, port = args.broker.rpartition(":")
    link = DoorLink(host or "127.0.0.1", int(port), args.prefix)
    if not link.start():
        print(f"officepass member disable: the broker {args.broker} does not answer; nothing changed",
              file=sys.stderr)
        return 1
    try:
        ring = KeyRing(Path(args.keys))
        with _db(args.db).begin() as db:
            revocation = disable_and_publish(
                db, args.member, lambda version, ids: link.publish_revocation(ring.revocation(version, ids)))
    except MemberProblem as exc:
        print(f"officepass member disable: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"officepass member disable: {exc}; the member stays enabled", file=sys.stderr)
        return 1
    finally:
        link.stop()
    print(f"member {args.member} disabled; revocation list version {revocation.version} published")
    return 0


def cmd_store_add(args: argparse.Namespace) -> int:
    from officepass.members import MemberProblem, add_store

    try:
        with _db(args.db).begin() as db:
            add_store(db, args.store, args.name or args.store, args.door, areas=args.areas, rules=args.rules)
    except MemberProblem as exc:
        print(f"officepass store add: {exc}", file=sys.stderr)
        return 2
    print(f"store {args.store} added with doors {', '.join(args.door)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from officepass.consumer import FleetConsumer
    from officepass.link import DoorLink
    from officepass.mail import SupportMail
    from officepass.settings import SettingsError, load_settings
    from officepass.watch import OfflineWatch
    from officepass.web.app import create_app

    try:
        settings = load_settings(Path(args.config))
    except SettingsError as exc:
        print(f"officepass serve: {args.config} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    db = _db(settings.database)
    mail = None
    if settings.support is not None:
        s = settings.support
        mail = SupportMail(db, s.smtp_host, s.smtp_port, s.sender, s.email, settings.base_url)
    on_alarm = mail.nudge if mail is not None else lambda: None
    # One stable client id per service host and listen address: a restarted service resumes its
    # broker session and gets what was published while it was away.
    consumer = FleetConsumer(db, settings.mqtt_host, settings.mqtt_port, settings.topic_prefix,
                             f"officepass-fleet-{socket.gethostname()}-{settings.listen}", on_alarm=on_alarm)
    watch = OfflineWatch(db, settings.offline_alarm_seconds, on_alarm)
    link = DoorLink(settings.mqtt_host, settings.mqtt_port, settings.topic_prefix)
    for part in (mail, consumer, watch):
        if part is not None:
            part.start()
    link.start()
    app = create_app(db, KeyRing(settings.keys), link, settings.secret(),
                     secure_cookie=settings.base_url.startswith("https://"))
    host, _, port = settings.listen.rpartition(":")
    print(f"officepass: member app and console on http://{settings.listen}/ "
          f"(QR URLs under {settings.base_url})", flush=True)
    try:
        uvicorn.run(app, host=host or "127.0.0.1", port=int(port), log_level="warning")
    finally:
        link.stop()
        for part in (watch, consumer, mail):
            if part is not None:
                part.stop()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from officepass.db import migrate

    migrate(args.db)
    print(f"{args.db}: schema up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="officepass", description="the pass service")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("new", help="make a key pair (the new one becomes active)")
    p.add_argument("kid")
    p.add_argument("--inactive", action="store_true", help="add it without minting with it yet")
    p.add_argument("--keys", default=str(DEFAULT_KEYS), help=f"key directory (default {DEFAULT_KEYS})")
    p.set_defaults(func=cmd_keys_new)
    p = keys.add_parser("list", help="the public keys, as doors configure them")
    p.add_argument("--keys", default=str(DEFAULT_KEYS))
    p.set_defaults(func=cmd_keys_list)
    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("upgrade", help="create or migrate the schema")
    p.add_argument("--db", default=DEFAULT_DB, help="SQLAlchemy URL (SQLite file or PostgreSQL)")
    p.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("serve", help="the member app, the console and the fleet consumer")
    p.add_argument("--config", required=True, help="the service's TOML file")
    p.set_defaults(func=cmd_serve)

    member = sub.add_parser("member", help="members").add_subparsers(dest="member_command", required=True)
    p = member.add_parser("add", help="add a member (the password is asked for, or read from stdin)")
    p.add_argument("member")
    p.add_argument("--name")
    p.add_argument("--role", choices=["member", "operator"], default="member")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--db", default=DEFAULT_DB)
    p.set_defaults(func=cmd_member_add)
    p = member.add_parser("disable", help="disable a member and publish the revocation list")
    p.add_argument("member")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--keys", default=str(DEFAULT_KEYS))
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of the doors' broker")
    p.add_argument("--prefix", default=DEFAULT_PREFIX)
    p.set_defaults(func=cmd_member_disable)

    store = sub.add_parser("store", help="stores").add_subparsers(dest="store_command", required=True)
    p = store.add_parser("add", help="add a store and its doors")
    p.add_argument("store")
    p.add_argument("--name")
    p.add_argument("--door", action="append", required=True, help="a door id (repeat for more)")
    p.add_argument("--areas", default="", help="the usable areas, as the member page shows them")
    p.add_argument("--rules", default="", help="the store's rules, as the member page shows them")
    p.add_argument("--db", default=DEFAULT_DB)
    p.set_defaults(func=cmd_store_add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
