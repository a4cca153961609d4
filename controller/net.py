"""Where plain HTTP may go: only to this machine (a bench, a test). The enrollment code, the door's
identity and its releases otherwise travel over HTTPS."""

from __future__ import annotations

import ipaddress


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
