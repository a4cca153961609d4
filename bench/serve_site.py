"""A service instance in a process of its own for the benches (as `officepass serve` runs one):
`python -m bench.serve_site DB_URL BROKER_PORT HTTP_PORT KEYS_DIR`."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from officepass.db import engine_for, migrate, sessions
from officepass.keys import KeyRing
from officepass.service import BrokerAccess, Service


def main() -> None:
    url, broker_port, http_port, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    migrate(url)
    service = Service(sessions(engine_for(url)), KeyRing(keys), BrokerAccess("127.0.0.1", broker_port),
                      "bench-secret-" + "x" * 32, base_url=f"http://127.0.0.1:{http_port}")
    service.start()
    try:
        uvicorn.run(service.app, host="127.0.0.1", port=http_port, log_level="warning", backlog=4096)
    finally:
        service.stop()


if __name__ == "__main__":
    main()
