"""The contract's defaults and the small rules both the door and the service apply.

The door decides (it journals the warning, it publishes the seats); the service shows. Both read
the rule here, so a door with a 1-minute or a 3-hour limit and the page that shows it agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from wire.vocab import Vacancy

DEFAULT_PREFIX = "officepass/v1"  # contract §5 `topic_prefix`
DEFAULT_ISSUER = "officepass"  # contract §1 `iss`
DEFAULT_SEATS = 2
DEFAULT_SESSION_LIMIT_MINUTES = 120
DEFAULT_AUTO_CHECKOUT_AFTER_MINUTES = 30

# Before the deadline by this much: overstay_warning (contract §2); limits under an hour warn a
# quarter of the limit early.
WARNING_LEAD_SECONDS = 15 * 60


def warning_lead_seconds(session_limit_seconds: float) -> float:
    """How long before the deadline the overstay warning comes (contract §2)."""
    if session_limit_seconds < 3600:
        return session_limit_seconds / 4
    return WARNING_LEAD_SECONDS


def vacancy_symbol(available: int) -> Vacancy:
    """Seats still free to the member app's symbol: ○ two or more, △ one, × none (contract §2)."""
    if available >= 2:
        return Vacancy.MANY
    return Vacancy.ONE if available == 1 else Vacancy.NONE


def rfc3339(ts: float) -> str:
    """Unix seconds as the wire's time: RFC 3339 UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(value: str) -> datetime:
    """The wire's time back to an aware datetime (a naive one is read as UTC); ValueError if not one."""
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
