"""Child process for the crash test: makes decisions in a loop until it is SIGKILLed.

After each decision returns (so it is committed), it prints what the journal now
holds: `seq N` per event and `used CTI` per spent code. The parent checks that all
of it survived the kill.
"""

from __future__ import annotations

import os
import sys
import time

from controller.config import load_config
from controller.core import DoorCore
from controller.journal import Journal
from tests.helpers import code
from tests.rig import Relay
from wire.vocab import Side


def main() -> None:
    config = load_config(sys.argv[1])
    core = DoorCore(config, Journal(config.storage.path), Relay(config).guard)
    out = os.fdopen(sys.stdout.fileno(), "w", buffering=1)
    out.write("ready\n")
    i = int.from_bytes(os.urandom(2), "big")
    while True:
        i += 1
        member = f"m-{i % 40}"
        inside = member in core.state.sessions
        text = code(member, iat=int(time.time()), ttl=30, act="checkout" if inside else None)
        handled = core.present(text, "remote" if inside else "front", Side.REMOTE if inside else Side.ENTRY)
        assert handled.decision is not None and handled.decision.ok, handled
        lines = [f"seq {e.seq}" for e in handled.events]
        assert handled.code is not None
        lines.append(f"used {handled.code.cti.hex()} {text}")
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
