"""The wire's words, each a closed type spelled once: acts, sources, deny reasons, event types, alarms,
lock, door and session states, vacancy symbols.

They are `StrEnum`s, so they compare equal to and serialize as the contract's strings (`json.dumps`
writes `Act.CHECK_IN` as "check_in"), while a type checker refuses a misspelled or unknown one.
"""

from __future__ import annotations

from enum import StrEnum


class Act(StrEnum):
    """What a member code asks for (contract §1 `act`, §3)."""

    CHECK_IN = "check_in"
    UNLOCK = "unlock"
    CHECKOUT_BEGIN = "checkout_begin"
    CHECKOUT = "checkout"


class Side(StrEnum):
    """Where a code came from: a reader outside, a reader inside, or an MQTT command."""

    ENTRY = "entry"
    EXIT = "exit"
    REMOTE = "remote"


class Source(StrEnum):
    """An event's `source` (contract §4)."""

    ENTRY = "entry"
    EXIT = "exit"
    REMOTE = "remote"
    BUTTON = "button"
    FIRE = "fire"
    SYSTEM = "system"


class Deny(StrEnum):
    """Why a request was refused. The first ten are contract §1's verifier order."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    TTL_TOO_LONG = "ttl_too_long"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_STORE = "wrong_store"
    REVOKED = "revoked"
    REPLAYED = "replayed"
    # A command for an act that needs presence (contract §9) without a code the door showed lately.
    NOT_PRESENT = "not_present"
    # From the session rules (§3) and the door's own condition.
    FULL = "full"
    NOT_CHECKED_IN = "not_checked_in"
    JOURNAL_ERROR = "journal_error"
    # A command while the door cannot tell the time well enough to judge its ttl.
    CLOCK_UNSYNCED = "clock_unsynced"
    # More commands waiting than the door takes at once: ask again.
    BUSY = "busy"


VERIFIER_ORDER: tuple[Deny, ...] = (
    Deny.MALFORMED,
    Deny.UNKNOWN_KEY,
    Deny.BAD_SIGNATURE,
    Deny.WRONG_ISSUER,
    Deny.TTL_TOO_LONG,
    Deny.NOT_YET_VALID,
    Deny.EXPIRED,
    Deny.WRONG_STORE,
    Deny.REVOKED,
    Deny.REPLAYED,
    Deny.NOT_PRESENT,
)


class EventType(StrEnum):
    """Every event the door journals and publishes (contract §4 lists the first twelve)."""

    CHECK_IN = "check_in"
    UNLOCK = "unlock"
    CHECKOUT_BEGIN = "checkout_begin"
    CHECKOUT = "checkout"
    DENIED = "denied"
    OVERSTAY_WARNING = "overstay_warning"
    OVERSTAY = "overstay"
    DOOR_FORCED = "door_forced"
    DOOR_HELD = "door_held"
    UNLOCK_FAULT = "unlock_fault"
    READER_FAULT = "reader_fault"
    RELAY_WATCHDOG = "relay_watchdog"
    # Ours, beyond the contract's list.
    LOCK_FAULT = "lock_fault"  # the bolt stays retracted with the relay off
    READER_RECOVERED = "reader_recovered"
    FIRE_CLEARED = "fire_cleared"
    ALARM_CLEARED = "alarm_cleared"
    JOURNAL_RECOVERED = "journal_recovered"
    REVOCATION_APPLIED = "revocation_applied"


class Alarm(StrEnum):
    """A condition that stands in the status `alarms` until it is no longer true."""

    DOOR_FORCED = "door_forced"
    DOOR_HELD = "door_held"
    UNLOCK_FAULT = "unlock_fault"
    LOCK_FAULT = "lock_fault"
    READER_FAULT = "reader_fault"
    JOURNAL_ERROR = "journal_error"
    FIRE = "fire"
    CLOUD_CONFIG = "cloud_config"



class DoorPosition(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


class BoltPosition(StrEnum):
    RETRACTED = "retracted"
    EXTENDED = "extended"
    UNKNOWN = "unknown"


class LockStatus(StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    JAMMED = "jammed"


class SessionState(StrEnum):
    CHECKED_IN = "checked_in"
    CHECKING_OUT = "checking_out"


class Vacancy(StrEnum):
    """The member app's vacancy symbol from seats still free (contract §2; the rule: wire.rules)."""

    MANY = "○"  # two or more free
    ONE = "△"
    NONE = "×"
