"""One service instance, composed: its broker connection (one identity), the fleet consumer, the door
link, the revocation publisher, support mail, the offline watch, the webhook sender and the web app
(with the API). `officepass serve` runs exactly this, and so do the tests and benches: there is one
way the parts are put together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from officepass.connection import ServiceConnection
from officepass.consumer import FleetConsumer
from officepass.door_config import ConfigPublisher
from officepass.enrollment import EnrollPlace
from officepass.keys import KeyRing
from officepass.link import DoorLink
from officepass.mail import SupportMail
from officepass.notifier import Change, FleetNotifier
from officepass.repair import GapRepair
from officepass.revocations import POLL_SECONDS, REPUBLISH_SECONDS, RevocationPublisher
from officepass.settings import Support
from officepass.watch import OfflineWatch
from officepass.web.app import create_app
from officepass.webhooks import WebhookSender
from wire.credentials import MqttCredentials
from wire.rules import DEFAULT_PREFIX


@dataclass(frozen=True)
class BrokerAccess:
    """Where the broker is and who this instance is there."""

    host: str
    port: int
    credentials: MqttCredentials = field(default_factory=lambda: MqttCredentials(None, None, None))
    prefix: str = DEFAULT_PREFIX
    client_id: str | None = None  # only without an identity (a plain test broker)


class Service:
    def __init__(self, db: sessionmaker[Session], keys: KeyRing, broker: BrokerAccess, secret: str, *,
                 base_url: str, support: Support | None = None, offline_alarm_seconds: float = 300,
                 secure_cookie: bool = False, republish_seconds: float = REPUBLISH_SECONDS,
                 poll_seconds: float = POLL_SECONDS, enroll: EnrollPlace | None = None,
                 releases_dir: Path | None = None) -> None:
        self.db = db
        self.keys = keys
        self.connection = ServiceConnection(broker.host, broker.port, broker.credentials, broker.client_id)
        self.mail = (SupportMail(db, support.smtp_host, support.smtp_port, support.sender, support.email,
                                 base_url) if support is not None else None)
        on_alarm = self.mail.nudge if self.mail is not None else (lambda: None)
        # The live pages of this instance, and through PostgreSQL's NOTIFY those of the others.
        self.notifier = FleetNotifier(db.kw.get("bind"))
        self.consumer = FleetConsumer(db, self.connection, broker.prefix, on_alarm=on_alarm,
                                      on_change=self.notifier.changed)
        self.link = DoorLink(self.connection, broker.prefix)
        self.revocations = RevocationPublisher(
            db, lambda version, ids: self.link.publish_revocation(keys.revocation(version, ids)),
            republish_seconds, poll_seconds)
        self.watch = OfflineWatch(db, offline_alarm_seconds, on_alarm,
                                  on_raised=lambda: self.notifier.changed({Change.DOORS, Change.CONSOLE}))
        self.repair = GapRepair(db, self.link.ask_replay, self.connection.connected)
        self.webhooks = WebhookSender(db)
        self.configs = ConfigPublisher(db, self.link.publish_config, poll_seconds)
        self.app: FastAPI = create_app(db, keys, self.link, secret, secure_cookie=secure_cookie,
                                       revocations=self.revocations, notifier=self.notifier, contact=support,
                                       configs=self.configs, enroll=enroll, base_url=base_url,
                                       releases_dir=releases_dir)

    def start(self, timeout: float = 10.0) -> bool:
        """Everything running; True once the broker took the subscriptions within `timeout` (the
        connection keeps trying either way)."""
        if self.mail is not None:
            self.mail.start()
        self.notifier.start()
        self.consumer.start()
        self.watch.start()
        subscribed = self.connection.start(timeout)
        self.revocations.start()
        self.repair.start()
        self.webhooks.start()
        self.configs.start()
        return subscribed

    def stop(self) -> None:
        self.configs.stop()
        self.webhooks.stop()
        self.repair.stop()
        self.revocations.stop()
        self.connection.stop()
        self.watch.stop()
        self.consumer.stop()
        self.notifier.stop()
        if self.mail is not None:
            self.mail.stop()
