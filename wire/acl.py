"""Who may say what on the broker (contract §4), as data: every identity's client id and the topic
filters it may publish to and subscribe to. `officepass broker-config` writes them as mosquitto's ACL
file; docs/broker.md shows the same rules for EMQX. One definition, so a broker's rules and the
contract cannot drift apart.

Identities (usernames, and so client ids: the broker binds one to the other):
* a door: `door/{store}/{door}`;
* a service instance: `svc/{instance}` (one connection per instance: fleet consumer and door link);
* a read-only observer (a dashboard, Home Assistant): `observer/{name}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from wire.topics import HOME_ASSISTANT_STATUS, ID_RE, SHARE_GROUP, Topics

HOME_ASSISTANT_DISCOVERY = "homeassistant/+/+/+/config"


@dataclass(frozen=True, slots=True)
class Identity:
    """One client of the broker and what it may do."""

    username: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    @property
    def client_id(self) -> str:
        return self.username


def door_username(store: str, door: str) -> str:
    return f"door/{store}/{door}"


def service_username(instance: str) -> str:
    return f"svc/{instance}"


def observer_username(name: str) -> str:
    return f"observer/{name}"


def instance_of(username: str) -> str | None:
    """The instance of a service identity's username (`svc/{instance}`), else None."""
    kind, _, instance = username.partition("/")
    return instance if kind == "svc" and ID_RE.fullmatch(instance) else None


def door_identity(topics: Topics, store: str, door: str, *, controller: bool,
                  home_assistant: bool = False) -> Identity:
    """A door: its own status, events and answers; the store's seats and sessions only as the store's
    one controller. It listens to its own commands, replays and config, the revocation list and its
    store's sessions (to clear the ones it no longer holds)."""
    publish = [topics.status(store, door), topics.events(store, door), topics.cmd_result(store, door),
               topics.replay_result(store, door), topics.reply("+", store, door)]
    subscribe = [topics.cmd(store, door), topics.replay(store, door), topics.config(store, door),
                 topics.revoked()]
    if controller:
        publish += [topics.seats(store), topics.sessions_filter(store)]
        subscribe.append(topics.sessions_filter(store))
    if home_assistant:
        publish.append(HOME_ASSISTANT_DISCOVERY)
        subscribe.append(HOME_ASSISTANT_STATUS)
    return Identity(door_username(store, door), tuple(publish), tuple(subscribe))


def service_identity(topics: Topics, instance: str) -> Identity:
    """A service instance: the only one who may command doors, ask for replays, configure them and
    publish the revocation list; it reads every door's messages and its own replies."""
    everything = f"{topics.prefix}/stores/#"
    return Identity(
        service_username(instance),
        publish=(topics.cmd("+", "+"), topics.replay("+", "+"), topics.config("+", "+"), topics.revoked()),
        subscribe=(everything, f"$share/{SHARE_GROUP}/{topics.events('+', '+')}",
                   topics.replies_filter(instance), topics.revoked()),
    )


def observer_identity(topics: Topics, name: str) -> Identity:
    """Read only: the fleet's status, seats, sessions and events; never a command."""
    return Identity(observer_username(name), publish=(),
                    subscribe=(topics.status("+", "+"), topics.seats("+"), topics.sessions_filter("+"),
                               topics.events("+", "+"), topics.revoked(), "homeassistant/#"))
