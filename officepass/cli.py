"""`officepass`: the pass service's command line (this part: keys, members, stores, the database)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import sessionmaker

from wire.topics import Topics

if TYPE_CHECKING:
    from officepass.settings import Settings
from officepass.keys import KeyProblem, KeyRing

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
    keys = KeyRing(Path(args.keys)).public_keys() if Path(args.keys).is_dir() else []
    if not keys:
        print(f"officepass keys list: no keys in {args.keys}: officepass keys new KID", file=sys.stderr)
        return 1
    for key in keys:
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
    from officepass.members import MemberProblem, disable_committed

    try:
        revocation = disable_committed(_db(args.db), args.member)
    except MemberProblem as exc:
        print(f"officepass member disable: {exc}", file=sys.stderr)
        return 2
    print(f"member {args.member} disabled; revocation list version {revocation.version} recorded: the "
          "running service publishes it within 10 s (and again every 10 minutes)")
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

    from officepass.enrollment import EnrollPlace
    from officepass.service import BrokerAccess, Service
    from officepass.settings import SettingsError, load_settings

    try:
        settings = load_settings(Path(args.config))
        credentials = settings.mqtt.credentials()
        secret = settings.secret()
    except SettingsError as exc:
        print(f"officepass serve: {args.config} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    mqtt = settings.mqtt
    # Without an identity (a plain test broker): one stable client id per service host and listen
    # address, so a restarted service resumes its broker session. With one, the id is the identity.
    access = BrokerAccess(mqtt.host, mqtt.port, credentials, mqtt.topic_prefix,
                          client_id=f"officepass-{socket.gethostname()}-{settings.listen}")
    keys = KeyRing(settings.keys)
    enroll = (None if settings.broker is None else
              EnrollPlace(settings.broker, mqtt.topic_prefix, settings.base_url, keys))
    service = Service(_db(settings.database), keys, access, secret,
                      base_url=settings.base_url, support=settings.support,
                      offline_alarm_seconds=settings.offline_alarm_seconds,
                      secure_cookie=settings.base_url.startswith("https://"), enroll=enroll,
                      releases_dir=settings.releases)
    service.start()
    host, _, port = settings.listen.rpartition(":")
    print(f"officepass: member app and console on http://{settings.listen}/ "
          f"(QR URLs under {settings.base_url})", flush=True)
    try:
        # Forwarded headers only from the proxies named: anyone else could claim any address and walk
        # around the login limit (uvicorn would trust 127.0.0.1 by default).
        proxies = settings.trusted_proxies
        uvicorn.run(service.app, host=host or "127.0.0.1", port=int(port), log_level="warning",
                    proxy_headers=bool(proxies), forwarded_allow_ips=",".join(proxies) or None)
    finally:
        service.stop()
    return 0


def _settings(path: str, command: str) -> Settings | None:
    from officepass.settings import SettingsError, load_settings

    try:
        return load_settings(Path(path))
    except SettingsError as exc:
        print(f"officepass {command}: {path} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_ca_init(args: argparse.Namespace) -> int:
    from officepass.ca import CaProblem, init_ca

    settings = _settings(args.config, "ca init")
    if settings is None:
        return 2
    if settings.broker is None:
        print(f"officepass ca init: {args.config} has no [broker] section (where the CA lives, the broker's "
              "names)", file=sys.stderr)
        return 2
    try:
        written = init_ca(settings.broker.ca_dir, settings.broker.hostnames)
    except (CaProblem, OSError) as exc:
        print(f"officepass ca init: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_broker_config(args: argparse.Namespace) -> int:
    from officepass.broker_config import BrokerPlan, fleet_identities, secret_path, write_broker_config
    from officepass.ca import BROKER_CERT

    settings = _settings(args.config, "broker-config")
    if settings is None:
        return 2
    broker = settings.broker
    if broker is None:
        print(f"officepass broker-config: {args.config} has no [broker] section", file=sys.stderr)
        return 2
    if not (broker.ca_dir / BROKER_CERT).exists():
        print(f"officepass broker-config: no broker certificate in {broker.ca_dir}: run `officepass ca init "
              f"--config {args.config}` first", file=sys.stderr)
        return 2
    with _db(settings.database)() as db:
        identities = fleet_identities(db, Topics(settings.mqtt.topic_prefix), broker.instances,
                                      broker.observers, broker.home_assistant)
    out = Path(args.out) if args.out else broker.config_dir
    plan = BrokerPlan(broker.listen_host, broker.listen_port, broker.plain_port, broker.ca_dir, identities)
    try:
        write_broker_config(plan, out)
    except OSError as exc:
        print(f"officepass broker-config: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    doors = [i for i in identities if i.username.startswith("door/")]
    print(f"wrote {out / 'mosquitto.conf'}: {len(doors)} doors, {len(broker.instances)} service instances, "
          f"{len(broker.observers)} observers; run `mosquitto -c {out / 'mosquitto.conf'}` "
          "(a running one: send it SIGHUP)")
    for identity in identities:
        print(f"  {identity.username}: password in {secret_path(out, identity.username)}")
    return 0


def cmd_token_new(args: argparse.Namespace) -> int:
    from officepass.tokens import TokenProblem, new_token

    try:
        with _db(args.db).begin() as db:
            made = new_token(db, args.name, args.scope, created_by=f"cli:{getpass.getuser()}")
    except TokenProblem as exc:
        print(f"officepass token new: {exc}", file=sys.stderr)
        return 2
    print(f"# token {made.record.id} ({made.record.scope}) for {made.record.name!r}: "
          "shown once, keep it secret")
    print(made.token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from officepass.tokens import tokens

    with _db(args.db)() as db:
        for record in tokens(db):
            state = f"revoked {record.revoked:%Y-%m-%d %H:%M}" if record.revoked else "live"
            used = f"used {record.last_used:%Y-%m-%d %H:%M}" if record.last_used else "never used"
            print(f"{record.id}  {record.scope:<8} {state:<24} {used:<22} {record.name}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from officepass.tokens import TokenProblem, revoke_token

    try:
        with _db(args.db).begin() as db:
            revoke_token(db, args.token_id)
    except TokenProblem as exc:
        print(f"officepass token revoke: {exc}", file=sys.stderr)
        return 2
    print(f"token {args.token_id} revoked: it opens nothing from now on")
    return 0


def cmd_webhook_add(args: argparse.Namespace) -> int:
    from officepass.webhooks import WebhookProblem, add_webhook

    try:
        with _db(args.db).begin() as db:
            hook = add_webhook(db, args.url, args.types)
    except WebhookProblem as exc:
        print(f"officepass webhook add: {exc}", file=sys.stderr)
        return 2
    print(f"# webhook {hook.id}: {hook.url} gets {', '.join(hook.types['types'])} from now on")
    print("# its signing secret, shown once (Standard Webhooks: the key is the base64 after whsec_):")
    print(hook.secret)
    return 0


def cmd_webhook_list(args: argparse.Namespace) -> int:
    from officepass.webhooks import webhooks

    with _db(args.db)() as db:
        for hook in webhooks(db):
            print(f"{hook.id}  {hook.url}  {','.join(hook.types['types'])}")
    return 0


def cmd_webhook_remove(args: argparse.Namespace) -> int:
    from officepass.webhooks import WebhookProblem, remove_webhook

    try:
        with _db(args.db).begin() as db:
            remove_webhook(db, args.webhook_id)
    except WebhookProblem as exc:
        print(f"officepass webhook remove: {exc}", file=sys.stderr)
        return 2
    print(f"webhook {args.webhook_id} removed: nothing more is sent to it")
    return 0


def cmd_door_add(args: argparse.Namespace) -> int:
    from officepass.enrollment import EnrollProblem, add_door
    from wire.fleet import enroll_command

    settings = _settings(args.config, "door add")
    if settings is None:
        return 2
    try:
        with _db(settings.database).begin() as db:
            made = add_door(db, args.store, args.door, by=f"cli:{getpass.getuser()}")
    except EnrollProblem as exc:
        print(f"officepass door add: {exc}", file=sys.stderr)
        return 2
    role = "the store's controller" if made.controller else "a door of the store (not its controller)"
    print(f"# {made.store}/{made.door} registered as {role}.")
    print(f"# One-time enrollment code, valid until {made.expires:%Y-%m-%d %H:%M} UTC. On the Pi, after "
          "install-pi.sh:")
    print(enroll_command(settings.base_url, made.code))
    return 0


def cmd_door_config(args: argparse.Namespace) -> int:
    from officepass.door_config import ConfigProblem, change_config, newest, parse_setting

    settings = _settings(args.config, "door config")
    if settings is None:
        return 2
    changes: dict[str, dict[str, object]] = {}
    try:
        for item in args.set or []:
            name, sep, text = item.partition("=")
            section, dot, key = name.strip().partition(".")
            if not sep or not dot:
                raise ConfigProblem(f"{item!r}: write SECTION.KEY=VALUE, e.g. door.seats=3")
            changes.setdefault(section, {})[key] = parse_setting(section, key, text)
        for name in args.unset or []:
            section, dot, key = name.strip().partition(".")
            if not dot:
                raise ConfigProblem(f"{name!r}: write SECTION.KEY")
            changes.setdefault(section, {})[key] = None
        with _db(settings.database).begin() as db:
            if not changes:
                current = newest(db, args.store, args.door)
                print(f"{args.store}/{args.door}: " + (f"v{current.version} {json.dumps(current.settings)}"
                                                       if current else "no remote configuration"))
                return 0
            row = change_config(db, KeyRing(settings.keys), args.store, args.door, changes,
                                by=f"cli:{getpass.getuser()}")
    except ConfigProblem as exc:
        print(f"officepass door config: {exc}", file=sys.stderr)
        return 2
    print(f"{args.store}/{args.door}: configuration v{row.version} stored; the service publishes it within "
          f"seconds and the door applies it at its next quiet moment: {json.dumps(row.settings)}")
    return 0


def cmd_release_publish(args: argparse.Namespace) -> int:
    from officepass.releases import TARGETS, ReleaseProblem, publish

    settings = _settings(args.config, "release publish")
    if settings is None:
        return 2
    try:
        with _db(settings.database).begin() as db:
            built = publish(db, KeyRing(settings.keys), Path(args.source), args.version, settings.releases,
                            tuple(args.target or TARGETS), by=f"cli:{getpass.getuser()}")
    except (ReleaseProblem, OSError) as exc:
        print(f"officepass release publish: {exc}", file=sys.stderr)
        return 2
    print(f"release {built.version}: {built.files} files, {built.bytes / 1e6:.1f} MB, signed; roll it out "
          "from /console/releases (one door first), or: officepass door config --set "
          f"update.release={built.version} STORE DOOR")
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
    p.add_argument("--keys", help=f"key directory (default: the --config file's, else {DEFAULT_KEYS})")
    p.add_argument("--config", help="the service's TOML file (officepass serve's): its database and keys")
    p.set_defaults(func=cmd_keys_new)
    p = keys.add_parser("list", help="the public keys, as doors configure them")
    p.add_argument("--keys", help="key directory (default: the --config file's)")
    p.add_argument("--config", help="the service's TOML file (officepass serve's): its database and keys")
    p.set_defaults(func=cmd_keys_list)
    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("upgrade", help="create or migrate the schema")
    p.add_argument("--db", help="a SQLite file, or an SQLAlchemy URL (default: the --config file's)")
    p.add_argument("--config", help="the service's TOML file (officepass serve's): its database and keys")
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
    p.add_argument("--db", help="a SQLite file, or an SQLAlchemy URL (default: the --config file's)")
    p.add_argument("--config", help="the service's TOML file (officepass serve's): its database and keys")
    p.set_defaults(func=cmd_member_add)
    p = member.add_parser("disable", help="disable a member and publish the revocation list")
    p.add_argument("member")
    p.add_argument("--db", help="a SQLite file, or an SQLAlchemy URL (default: the --config file's)")
    p.add_argument("--config", help="the service's TOML file (officepass serve's): its database and keys")
    p.set_defaults(func=cmd_member_disable)

    ca = sub.add_parser("ca", help="the operator's CA").add_subparsers(dest="ca_command", required=True)
    p = ca.add_parser("init", help="make the CA (once) and the broker's TLS certificate ([broker] ca_dir)")
    p.add_argument("--config", required=True, help="the service's TOML file")
    p.set_defaults(func=cmd_ca_init)
    p = sub.add_parser("broker-config", help="write a closed mosquitto configuration for the fleet")
    p.add_argument("--config", required=True, help="the service's TOML file")
    p.add_argument("--out", help="the directory to write (mosquitto.conf, acl, passwords); "
                   "default [broker] config_dir")
    p.set_defaults(func=cmd_broker_config)

    token = sub.add_parser("token", help="API tokens (contract §10)").add_subparsers(dest="token_command",
                                                                                   required=True)
    p = token.add_parser("new", help="make an API token (shown once)")
    p.add_argument("name", help="what it is for (a platform, a warehouse)")
    p.add_argument("--scope", required=True, choices=["read", "members"],
                   help="read: events, doors, stores; members: add, disable and enable members")
    p.set_defaults(func=cmd_token_new)
    p = token.add_parser("list", help="the tokens, live and revoked")
    p.set_defaults(func=cmd_token_list)
    p = token.add_parser("revoke", help="revoke a token: it opens nothing from now on")
    p.add_argument("token_id", help="its id (the part after opt_, as token list shows)")
    p.set_defaults(func=cmd_token_revoke)
    webhook = sub.add_parser("webhook", help="webhooks (contract §10)").add_subparsers(dest="webhook_command",
                                                                                      required=True)
    p = webhook.add_parser("add", help="send the stored events of some types to a URL (secret shown once)")
    p.add_argument("url")
    p.add_argument("--types", required=True, help="event types, comma-separated: check_in,checkout,...")
    p.set_defaults(func=cmd_webhook_add)
    p = webhook.add_parser("list", help="the webhooks")
    p.set_defaults(func=cmd_webhook_list)
    p = webhook.add_parser("remove", help="stop sending to a webhook")
    p.add_argument("webhook_id", type=int)
    p.set_defaults(func=cmd_webhook_remove)
    for name in ("token", "webhook"):
        for command in (token if name == "token" else webhook).choices.values():
            command.add_argument("--db", help="a SQLite file, or an SQLAlchemy URL (default: --config's)")
            command.add_argument("--config", help="the service's TOML file (officepass serve's)")

    door = sub.add_parser("door", help="doors: enrollment and remote configuration (contract §11)"
                          ).add_subparsers(dest="door_command", required=True)
    p = door.add_parser("add", help="register a door and print its one-time enrollment command")
    p.add_argument("--config", required=True, help="the serve file")
    p.add_argument("store")
    p.add_argument("door")
    p.set_defaults(func=cmd_door_add)
    p = door.add_parser("config", help="show or change a door's remote configuration")
    p.add_argument("--config", required=True, help="the serve file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="e.g. door.seats=3")
    p.add_argument("--unset", action="append", metavar="SECTION.KEY", help="back to the door's file")
    p.add_argument("store")
    p.add_argument("door")
    p.set_defaults(func=cmd_door_config)

    release = sub.add_parser("release", help="door releases (contract §11)"
                             ).add_subparsers(dest="release_command", required=True)
    p = release.add_parser("publish", help="build and sign a door release from a checkout")
    p.add_argument("--config", required=True, help="the serve file")
    p.add_argument("--version", required=True, help="the release's version, e.g. 0.2.0")
    p.add_argument("--source", default=str(Path(__file__).resolve().parents[1]),
                   help="the doorctl checkout to build (default: this one)")
    p.add_argument("--target", action="append", help="bookworm-aarch64 or bookworm-x86_64 (default: both)")
    p.set_defaults(func=cmd_release_publish)

    store = sub.add_parser("store", help="stores").add_subparsers(dest="store_command", required=True)
    p = store.add_parser("add", help="add a store and its doors")
    p.add_argument("store")
    p.add_argument("--name")
    p.add_argument("--door", action="append", required=True, help="a door id (repeat for more)")
    p.add_argument("--areas", default="", help="the usable areas, as the member page shows them")
    p.add_argument("--rules", default="", help="the store's rules, as the member page shows them")
    p.add_argument("--db", help="a SQLite file, or an SQLAlchemy URL (default: the --config file's)")
    p.add_argument("--config", help="the service's TOML file (officepass serve's): its database and keys")
    p.set_defaults(func=cmd_store_add)
    return parser


def _resolve(args: argparse.Namespace) -> str | None:
    """--db and --keys from the command line, else from --config's file, else the defaults. A plain
    path is a SQLite file. The problem, when --config cannot be read."""
    settings = None
    if getattr(args, "config", None) and args.func not in (cmd_serve, cmd_ca_init, cmd_broker_config):
        from officepass.settings import SettingsError, load_settings

        try:
            settings = load_settings(Path(args.config))
        except SettingsError as exc:
            return "; ".join(exc.problems)
    if hasattr(args, "db"):
        url = args.db or (settings.database if settings else DEFAULT_DB)
        args.db = url if "://" in url else f"sqlite:///{Path(url).resolve()}"
    if hasattr(args, "keys"):
        args.keys = args.keys or str(settings.keys if settings else DEFAULT_KEYS)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    args = build_parser().parse_args(argv)
    command = " ".join(a for a in (args.command, *(getattr(args, k, None) for k in
                                                   ("keys_command", "db_command", "member_command",
                                                    "store_command", "ca_command", "token_command",
                                                    "webhook_command"))) if a)
    problem = _resolve(args)
    if problem is not None:
        print(f"officepass {command}: {problem}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except SQLAlchemyError as exc:  # the database cannot be opened or used: say which, in one line
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        where = getattr(args, "db", "the database")
        print(f"officepass {command}: {where}: {first}", file=sys.stderr)
        return 1
    except (OSError, KeyProblem) as exc:
        print(f"officepass {command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
