"""What crosses between a door, the pass service, the simulator and the benches, spelled once.

`doorctl-wire` is its own small distribution (pure Python: cbor2 and cryptography), installed on the
Pi beside the door and in the service beside officepass, so neither side ever spells a topic, a
payload key, a reason or a default of the contract on its own:

* `wire.vocab`: the closed vocabularies (acts, sources, deny reasons, event types, alarms, lock,
  door and session states, vacancy symbols).
* `wire.rules`: the contract's defaults and small rules both sides apply (free seats to symbol,
  the overstay warning lead, RFC 3339 times).
* `wire.topics`: one function per topic, and one parser from a topic back to its parts.
* `wire.payloads`: every JSON payload of contract §4 as a typed value with `to_json`/`from_json`.
* `wire.codes`, `wire.base45`: the signed code formats (member codes, commands, revocation lists).
* `wire.presence`: the presence code formula of §9.
"""
