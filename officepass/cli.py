"""`officepass`: the pass service's command line (this part: keys and the database)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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
    for key in KeyRing(Path(args.keys)).public_keys():
        print(f'{key.kid} = "{key.public_b64}"{"   # active" if key.active else ""}')
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
