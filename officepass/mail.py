"""Support hears at once: every alarm of a mailed kind (alarms.MAILED) is sent by SMTP to the support
address. The database says what is still to send, so a mail server that is down (or a restart)
delays the mail and loses none; each alarm is mailed once."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy.orm import Session

from officepass.alarms import OFFLINE, next_unmailed
from officepass.models import AlarmRecord
from wire.vocab import Alarm

log = logging.getLogger("officepass.mail")

RETRY_SECONDS = 30.0  # after a failed send; a new alarm wakes the sender at once
SMTP_TIMEOUT_SECONDS = 10.0

WHAT = {
    Alarm.UNLOCK_FAULT.value: "the lock did not open when the door was told to: a member may be waiting "
                              "at the door",
    OFFLINE: "the door is offline: app buttons cannot reach it",
}


def compose(alarm: AlarmRecord, sender: str, to: str, base_url: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = f"[officepass] {alarm.kind} at {alarm.store}/{alarm.door}"
    message.set_content(
        f"Door {alarm.store}/{alarm.door}: {WHAT.get(alarm.kind, alarm.kind)}.\n"
        f"Raised {alarm.raised.isoformat(timespec='seconds')}.\n\n"
        f"Acknowledge it in the console: {base_url.rstrip('/')}/console#alarm-{alarm.id}\n")
    return message


class SupportMail:
    def __init__(self, sessions: Callable[[], Session], host: str, port: int, sender: str, to: str,
                 base_url: str) -> None:
        self._sessions = sessions
        self.host, self.port, self.sender, self.to, self.base_url = host, port, sender, to, base_url
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="support-mail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(SMTP_TIMEOUT_SECONDS + 5)

    def nudge(self) -> None:
        """Something may need mailing now (called by whoever raised an alarm)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            try:
                delay = RETRY_SECONDS if not self.send_pending() else RETRY_SECONDS * 4
            except Exception:  # never let one bad round end the sender
                log.exception("support mail round failed")
                delay = RETRY_SECONDS
            self._wake.wait(delay)
            self._wake.clear()

    def send_pending(self) -> bool:
        """Send every alarm not yet mailed; True when nothing is left (or there was nothing).

        One alarm at a time, each in its own transaction holding that alarm's row (`FOR UPDATE SKIP
        LOCKED`): with several instances on one PostgreSQL, each alarm is mailed by one of them, once.
        """
        smtp: smtplib.SMTP | None = None
        try:
            while True:
                with self._sessions() as db, db.begin():
                    alarm = next_unmailed(db)
                    if alarm is None:
                        return True
                    if smtp is None:
                        smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS)
                    smtp.send_message(compose(alarm, self.sender, self.to, self.base_url))
                    alarm.mailed = datetime.now(UTC)  # committed with the row's lock: mailed once
                    log.info("support mailed: %s at %s/%s", alarm.kind, alarm.store, alarm.door)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("support mail to %s via %s:%d failed (%s): retrying in %.0f s",
                        self.to, self.host, self.port, exc, RETRY_SECONDS)
            return False
        finally:
            if smtp is not None:
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    smtp.quit()
