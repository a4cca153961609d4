"""The revocation worker: verifies signed revocation lists off the reactor (contract §4).

A 100,000-member list takes seconds to decode and check, so its own thread does that; the newest
offer wins, one at a time. A verified list goes to the reactor, which alone checks its version
against the door's and writes it to the journal (through the door's port).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from wire.codes import MalformedCode, RevocationList, revocation_text_limit

log = logging.getLogger("doorctl.revocation")


class RevocationWorker:
    def __init__(self, verify: Callable[[str, int], RevocationList], max_members: int,
                 verified: Callable[[RevocationList], None]) -> None:
        self._verify = verify
        self._max_members = max_members
        self.max_bytes = revocation_text_limit(max_members)
        self._verified = verified  # posts the list to the reactor
        self._cond = threading.Condition()
        self._offer: bytes | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="revocation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def offer(self, payload: bytes) -> None:
        """Network thread: the retained list arrived. Refused by size before anything is decoded."""
        if not payload:
            log.warning("the retained revocation list was cleared: keeping the one the door holds")
            return
        if len(payload) > self.max_bytes:
            log.warning("ignoring a revocation list of %d bytes, over the %d that %d members take",
                        len(payload), self.max_bytes, self._max_members)
            return
        with self._cond:
            self._offer = payload
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._offer is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                payload, self._offer = self._offer, None
            if payload is None:
                continue
            try:
                self._check(payload)
            except Exception:
                log.exception("revocation list check failed")

    def _check(self, payload: bytes) -> None:
        try:
            listing = self._verify(payload.decode("ascii"), self._max_members)
        except UnicodeDecodeError:
            log.warning("ignoring a revocation list that is not ASCII text")
            return
        except MalformedCode as exc:
            log.warning("ignoring a revocation list: %s", exc)
            return
        self._verified(listing)
