"""The same-presentation window (contract §1): a code seen again by the same reader within 5 s of
its first sighting is the same presentation, not a second use.

One implementation on the monotonic clock, used by the camera worker (send a code once per
presentation, not once per frame) and by the door core (ignore a code it already decided on).
"""

from __future__ import annotations

from collections.abc import Hashable

SAME_PRESENTATION_SECONDS = 5.0


class PresentationWindow:
    """Remembers when each key was first seen, for SAME_PRESENTATION_SECONDS."""

    def __init__(self, seconds: float = SAME_PRESENTATION_SECONDS, prune_at: int = 256) -> None:
        self.seconds = seconds
        self._first: dict[Hashable, float] = {}
        # Expired keys are dropped when the memory doubles since the last drop: amortized O(1) per
        # sighting, and never more than twice what the last `seconds` brought.
        self._min_prune = prune_at
        self._prune_at = prune_at

    def seen_recently(self, key: Hashable, now: float) -> bool:
        """True when `key` was first seen at most `seconds` ago; otherwise note it as seen `now`."""
        first = self._first.get(key)
        if first is not None and 0 <= now - first <= self.seconds:
            return True
        if len(self._first) >= self._prune_at:
            self._first = {k: t for k, t in self._first.items() if 0 <= now - t <= self.seconds}
            self._prune_at = max(self._min_prune, 2 * len(self._first))
        self._first[key] = now
        return False

    def forget(self, key: Hashable) -> None:
        self._first.pop(key, None)
