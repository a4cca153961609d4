"""Run every benchmark (or those named): `python -m bench [core ...]`."""

from __future__ import annotations

import importlib
import sys

ALL = ["core", "decode", "cloud", "flood", "service", "presence", "fleet"]


def main() -> None:
    names = sys.argv[1:] or ALL
    for name in names:
        print(f"== bench {name} ==")
        importlib.import_module(f"bench.{name}").main()
        print()


if __name__ == "__main__":
    main()
