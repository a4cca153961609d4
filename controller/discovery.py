"""Home Assistant MQTT discovery: the door's lock, door and free seats as read-only entities.

Pure: `discovery_messages` returns the retained (topic, payload) pairs; the cloud link publishes
them on connect and when Home Assistant says it is back online. Nothing here can unlock the door.
"""

from __future__ import annotations

import json

from controller import __version__
from wire.topics import DoorTopics

DISCOVERY_PREFIX = "homeassistant"  # Home Assistant's default discovery prefix


def discovery_messages(topics: DoorTopics) -> list[tuple[str, str]]:
    node = f"doorctl_{topics.store}_{topics.door}".replace("-", "_").replace(".", "_")
    device = {"identifiers": [node], "name": f"Door {topics.store} {topics.door}", "manufacturer": "doorctl",
              "sw_version": __version__}
    availability = {"topic": topics.status,
                    "value_template": "{{ 'online' if value_json.online else 'offline' }}"}
    entities = {
        ("binary_sensor", "lock"): {
            "name": "Lock", "device_class": "lock", "state_topic": topics.status,
            # binary_sensor 'lock': ON means unlocked. State only: nothing here can unlock the door.
            "value_template": "{{ 'OFF' if value_json.lock == 'locked' else 'ON' }}",
        },
        ("binary_sensor", "door"): {
            "name": "Door", "device_class": "door", "state_topic": topics.status,
            "value_template": "{{ 'ON' if value_json.door == 'open' else 'OFF' }}",
        },
        ("sensor", "seats"): {
            "name": "Free seats", "state_topic": topics.seats, "unit_of_measurement": "seats",
            "value_template": "{{ value_json.available }}", "icon": "mdi:seat",
        },
    }
    return [
        (f"{DISCOVERY_PREFIX}/{component}/{node}/{object_id}/config",
         json.dumps({**entity, "unique_id": f"{node}_{object_id}", "device": device,
                     "availability": [availability]}))
        for (component, object_id), entity in entities.items()
    ]
