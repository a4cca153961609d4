"""The pure door machine: every cell of contract §3's table, the relay, the sensors and every alarm
with a fake clock (no sleeping), time limits, and properties over random sequences."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.decision import (
    BoltSensor,
    CodeRejected,
    CodeRequest,
    Deenergize,
    DoorSensor,
    DoorState,
    Energize,
    ExitButton,
    FireInput,
    Hold,
    Input,
    Journal,
    JournalHealth,
    Now,
    Policy,
    Publish,
    ReaderHealth,
    RelayTripped,
    Reply,
    Sensed,
    Session,
    Step,
    Tick,
    next_due,
    next_state,
)
from controller.journal import Journal as JournalFile
from wire.rules import vacancy_symbol
from wire.vocab import Act, Alarm, Deny, LockStatus, SessionState, Side

POLICY = Policy(seats=2, session_limit_seconds=7200, auto_checkout_after_seconds=1800, unlock_seconds=5,
                door_held_seconds=30, has_lock_sensor=False)
BOLT = replace(POLICY, has_lock_sensor=True)  # a door with a lock sensor
T0 = 1_800_000_000.0
M0 = 1000.0  # monotonic seconds at T0


def at(offset: float = 0.0) -> Now:
    """Door time and monotonic time `offset` seconds after the start of a test."""
    return Now(T0 + offset, M0 + offset)


def _state(*sessions: tuple[str, str]) -> DoorState:
    return DoorState.restored([Session(m, SessionState(st), T0, T0 + 7200) for m, st in sessions])


def _req(state: DoorState, side: str, act: str | None, member: str = "m1") -> Step:
    request = CodeRequest(member, Side(side), Act(act) if act else None, b"c" * 8)
    return next_state(state, request, at(60), POLICY)


def _types(step: Step) -> list[str]:
    return [e.type for e in step.events]


def run(
    state: DoorState, *timeline: tuple[float, Input], policy: Policy = POLICY
) -> tuple[DoorState, list[Step]]:
    """Feed inputs at their times (seconds after the start); return the end state and every step."""
    steps: list[Step] = []
    for offset, inp in timeline:
        step = next_state(state, inp, at(offset), policy)
        steps.append(step)
        state = step.state
    return state, steps


def relay_effects(steps: list[Step]) -> list[object]:
    return [e for s in steps for e in s.effects if isinstance(e, Energize | Deenergize | Hold)]


# Columns of the table: (source, act).
CODE_ENTRY, CODE_EXIT = ("entry", None), ("exit", None)
ACTS = [("remote", a) for a in ("check_in", "unlock", "checkout_begin", "checkout")]


@pytest.mark.parametrize("column", [CODE_EXIT, *ACTS[1:]], ids=str)
def test_none_denied_not_checked_in(column: tuple[str, str | None]) -> None:
    out = _req(_state(), *column)
    assert out.decision is not None and not out.decision.ok and not out.decision.unlock
    assert out.decision.reason == "not_checked_in"
    assert _types(out) == ["denied"] and out.events[0].reason == "not_checked_in"
    assert out.state.occupied == 0
    assert not relay_effects([out])


CHECK_IN_COLUMNS = [CODE_ENTRY, ACTS[0], ("exit", "check_in"), ("entry", "check_in")]


@pytest.mark.parametrize("column", CHECK_IN_COLUMNS, ids=str)
def test_none_checks_in_and_unlocks(column: tuple[str, str | None]) -> None:
    out = _req(_state(), *column)
    assert out.decision is not None
    assert out.decision.ok and out.decision.unlock and out.decision.result == "check_in"
    assert _types(out) == ["check_in", "unlock"]
    session = out.state.sessions["m1"]
    assert session.state == "checked_in" and session.deadline == T0 + 60 + 7200
    assert relay_effects([out]) == [Energize(M0 + 60 + 5)]


@pytest.mark.parametrize("column", [CODE_ENTRY, ACTS[0]], ids=str)
def test_none_denied_full(column: tuple[str, str | None]) -> None:
    out = _req(_state(("a", "checked_in"), ("b", "checking_out")), *column)
    assert out.decision is not None
    assert not out.decision.ok and out.decision.reason == "full" and not out.decision.unlock
    assert _types(out) == ["denied"]
    assert "m1" not in out.state.sessions


@pytest.mark.parametrize("held", ["checked_in", "checking_out"])
@pytest.mark.parametrize("column", [CODE_ENTRY, CODE_EXIT, ACTS[0], ACTS[1]], ids=str)
def test_in_store_unlocks(held: str, column: tuple[str, str | None]) -> None:
    state = _state(("m1", held))
    out = _req(state, *column)
    assert out.decision is not None
    assert out.decision.ok and out.decision.unlock and out.decision.result == "unlock"
    assert _types(out) == ["unlock"]
    assert out.state.sessions == state.sessions, "an unlock changes no session"


def test_checked_in_checkout_begin() -> None:
    out = _req(_state(("m1", "checked_in")), *ACTS[2])
    assert out.decision is not None
    assert out.decision.ok and not out.decision.unlock and out.decision.result == "checkout_begin"
    assert out.state.sessions["m1"].state == "checking_out"
    assert _types(out) == ["checkout_begin"]


def test_checking_out_checkout_begin_is_nothing_new() -> None:
    state = _state(("m1", "checking_out"))
    out = _req(state, *ACTS[2])
    assert out.decision is not None and out.decision.ok and not out.decision.unlock
    assert out.events == () and out.state == state


@pytest.mark.parametrize("held", ["checked_in", "checking_out"])
def test_checkout_closes_and_frees_the_seat(held: str) -> None:
    state = _state(("m1", held), ("m2", "checked_in"))
    assert state.available(POLICY) == 0
    out = _req(state, *ACTS[3])
    assert out.decision is not None
    assert out.decision.ok and not out.decision.unlock and out.decision.result == "checkout"
    assert "m1" not in out.state.sessions and out.state.available(POLICY) == 1
    (ev,) = out.events
    assert ev.type == "checkout" and ev.fields["auto"] is False
    # After checkout: no more unlocks, exactly as the member guide warns.
    for column in (CODE_EXIT, ACTS[1], ACTS[2], ACTS[3]):
        again = _req(out.state, *column)
        assert again.decision is not None
        assert not again.decision.unlock and again.decision.reason == "not_checked_in"


def test_rejections_are_journaled_and_answered() -> None:
    out = next_state(_state(), CodeRejected(Deny.EXPIRED, Side.ENTRY, "m9", b"x" * 8), at(), POLICY)
    assert out.decision == replace(out.decision, ok=False, unlock=False, reason=Deny.EXPIRED)
    (ev,) = out.events
    assert (ev.type, ev.member, ev.reason, ev.fields["cti"]) == ("denied", "m9", "expired", (b"x" * 8).hex())
    assert not relay_effects([out])


def test_effects_come_in_one_order_and_only_a_code_gates_on_the_journal() -> None:
    out = _req(_state(), *CODE_ENTRY)
    kinds = [type(e) for e in out.effects]
    assert kinds == [Journal, Energize, Reply, Publish]
    journal = out.effects[0]
    assert isinstance(journal, Journal) and journal.gates, "a code's unlock waits for its journal entry"
    button = next_state(_state(), ExitButton(True), at(), POLICY)
    assert [type(e) for e in button.effects] == [Journal, Energize, Publish]
    assert isinstance(button.effects[0], Journal) and not button.effects[0].gates


def test_vacancy_symbols() -> None:
    assert [vacancy_symbol(n) for n in (5, 2, 1, 0)] == ["○", "○", "△", "×"]


def test_time_limits_fire_once_in_order() -> None:
    state = next_state(DoorState(), CodeRequest("m1", Side.ENTRY), at(), POLICY).state
    deadline = 7200
    seen: list[str] = []
    for t in (100, deadline - 901, deadline - 900, deadline - 10, deadline, deadline + 5,
              deadline + 1799, deadline + 1800, deadline + 5000):
        out = next_state(state, Tick(), at(t), POLICY)
        seen += [e.type for e in out.events]
        state = out.state
        if t == deadline - 900:
            assert seen == ["overstay_warning"]
        if t == deadline:
            assert seen == ["overstay_warning", "overstay"] and state.sessions["m1"].overdue
    assert seen == ["overstay_warning", "overstay", "checkout"]
    assert state.occupied == 0


def test_short_limit_warns_a_quarter_early() -> None:
    policy = replace(POLICY, session_limit_seconds=40 * 60, auto_checkout_after_seconds=0)
    state = next_state(DoorState(), CodeRequest("m1", Side.ENTRY), at(), policy).state
    state = next_state(state, Tick(), at(10), policy).state  # the pulse ends
    assert not next_state(state, Tick(), at(30 * 60 - 1), policy).events
    assert _types(next_state(state, Tick(), at(30 * 60), policy)) == ["overstay_warning"]
    # auto checkout 0 = never
    late = next_state(state, Tick(), at(10**7), policy)
    assert _types(late) == ["overstay_warning", "overstay"] and late.state.occupied == 1
    assert next_due(late.state, policy)[0] is None


def test_overdue_member_can_always_leave() -> None:
    state = next_state(DoorState(), CodeRequest("m1", Side.ENTRY), at(), POLICY).state
    state = next_state(state, Tick(), at(7200 + 1), POLICY).state
    assert state.sessions["m1"].overdue
    out = next_state(state, CodeRequest("m1", Side.EXIT), at(7300), POLICY)
    assert out.decision is not None and out.decision.unlock and out.events[-1].fields.get("overdue") is True


def test_a_request_after_the_auto_checkout_time_sees_the_session_gone() -> None:
    state = next_state(DoorState(), CodeRequest("m1", Side.ENTRY), at(), POLICY).state
    out = next_state(state, CodeRequest("m1", Side.EXIT), at(7200 + 1800 + 1), POLICY)
    assert _types(out) == ["overstay_warning", "overstay", "checkout", "denied"]
    assert out.decision is not None and out.decision.reason == "not_checked_in"


# --- the relay, the sensors and the alarms, on a fake clock -------------------------------------


def test_exit_button_pulses_until_unlock_seconds() -> None:
    state, steps = run(DoorState(), (0, ExitButton(True)), (0.1, ExitButton(False)), (4.9, Tick()),
                       (5, Tick()))
    assert relay_effects(steps) == [Energize(M0 + 5), Deenergize()]
    assert [(e.type, e.source) for s in steps for e in s.events] == [("unlock", "button")]
    assert state.lock is LockStatus.LOCKED and state.physical.pulse_until is None


def test_a_new_unlock_restarts_the_pulse() -> None:
    # Consecutive unlocks (members in a row) extend the pulse: no Deenergize at the first pulse's end.
    state, steps = run(DoorState(), (0, ExitButton(True)), (0.1, ExitButton(False)),
                       (4, ExitButton(True)), (4.1, ExitButton(False)), (5, Tick()), (9, Tick()))
    assert relay_effects(steps) == [Energize(M0 + 5), Energize(M0 + 9), Deenergize()]
    assert state.lock is LockStatus.LOCKED


def test_pulse_ends_once_the_door_opened_and_closed() -> None:
    state = next_state(DoorState(), Sensed(door_closed=True, bolt_retracted=False, fire=False,
                                           exit_pressed=False), at(), POLICY).state
    state, steps = run(state, (0, ExitButton(True)), (0.5, BoltSensor(True)), (1, DoorSensor(False)),
                       (2, DoorSensor(True)))
    assert relay_effects(steps) == [Energize(M0 + 5), Deenergize()]
    assert state.alarms == frozenset() and "door_forced" not in [e.type for s in steps for e in s.events]


def test_door_forced_and_cleared() -> None:
    state, steps = run(DoorState(), (0, DoorSensor(True)), (1, DoorSensor(False)))
    assert Alarm.DOOR_FORCED in state.alarms and _types(steps[-1]) == ["door_forced"]
    state, steps = run(state, (2, DoorSensor(True)))
    assert Alarm.DOOR_FORCED not in state.alarms
    assert [(e.type, e.fields.get("alarm")) for e in steps[0].events] == [("alarm_cleared", "door_forced")]


def test_door_held_after_an_unlock() -> None:
    state, steps = run(DoorState(), (0, DoorSensor(True)), (0, ExitButton(True)), (1, DoorSensor(False)),
                       (30.9, Tick()), (31, Tick()))
    assert "door_held" not in _types(steps[-2]) and _types(steps[-1]) == ["door_held"]
    assert Alarm.DOOR_HELD in state.alarms and Alarm.DOOR_FORCED not in state.alarms
    state, _ = run(state, (40, DoorSensor(True)))
    assert Alarm.DOOR_HELD not in state.alarms


def test_door_left_open_after_a_fire_is_held() -> None:
    # The fire input opens the door; the fire clears with the door still open: door_held follows.
    state, steps = run(DoorState(), (0, DoorSensor(True)), (0, FireInput(True)), (5, DoorSensor(False)),
                       (100, FireInput(False)), (129, Tick()), (130, Tick()))
    assert relay_effects(steps) == [Hold(True), Hold(False), Deenergize()]
    assert "door_forced" not in [e.type for s in steps for e in s.events]
    assert _types(steps[-1]) == ["door_held"] and Alarm.DOOR_HELD in state.alarms


def test_fire_holds_through_everything() -> None:
    state, steps = run(DoorState(), (0, FireInput(True)), (1, ExitButton(True)), (1.1, ExitButton(False)),
                       (6, Tick()), (600, Tick()))
    assert state.lock is LockStatus.UNLOCKED and Alarm.FIRE in state.alarms
    assert Deenergize() not in relay_effects(steps), "nothing drops the relay while the fire input holds"
    state, steps = run(state, (601, FireInput(False)))
    assert relay_effects(steps) == [Hold(False), Deenergize()] and state.lock is LockStatus.LOCKED
    assert _types(steps[0]) == ["fire_cleared"]


def test_unlock_fault_when_the_bolt_does_not_retract() -> None:
    state, steps = run(DoorState(), (0, ExitButton(True)), (0.99, Tick()), (1, Tick()), policy=BOLT)
    assert _types(steps[-1]) == ["unlock_fault"] and state.lock is LockStatus.JAMMED
    state, steps = run(state, (2, BoltSensor(True)), policy=BOLT)
    assert Alarm.UNLOCK_FAULT not in state.alarms


def test_unlock_fault_judges_a_pulse_shorter_than_the_check() -> None:
    policy = replace(BOLT, unlock_seconds=0.5)
    state, steps = run(DoorState(), (0, ExitButton(True)), (0.5, Tick()), (1, Tick()), policy=policy)
    assert _types(steps[-1]) == ["unlock_fault"] and state.lock is LockStatus.JAMMED


def test_no_fault_when_the_bolt_follows() -> None:
    state, _steps = run(DoorState(), (0, ExitButton(True)), (0.2, BoltSensor(True)), (5, Tick()),
                       (5.3, BoltSensor(False)), (10, Tick()), policy=BOLT)
    assert state.alarms == frozenset() and state.lock is LockStatus.LOCKED


def test_bolt_retracted_with_the_relay_off_is_a_lock_fault() -> None:
    # Jammed the other way: the bolt stays retracted after the pulse, or is pushed back with the relay off.
    state, steps = run(DoorState(), (0, ExitButton(True)), (0.2, BoltSensor(True)), (5, Tick()), (6, Tick()),
                       policy=BOLT)
    assert _types(steps[-1]) == ["lock_fault"] and state.lock is LockStatus.JAMMED
    state, steps = run(state, (7, BoltSensor(False)), policy=BOLT)
    assert Alarm.LOCK_FAULT not in state.alarms and state.lock is LockStatus.LOCKED
    state, steps = run(state, (8, BoltSensor(True)), (9, Tick()), policy=BOLT)
    assert _types(steps[-1]) == ["lock_fault"]


def test_without_a_lock_sensor_no_bolt_is_judged() -> None:
    policy = replace(POLICY, has_lock_sensor=False)
    state, _steps = run(DoorState(), (0, ExitButton(True)), (1, Tick()), (5, Tick()), (7, Tick()),
                        policy=policy)
    assert state.alarms == frozenset()


def test_relay_trip_is_an_event_and_ends_the_pulse() -> None:
    state, steps = run(DoorState(), (0, ExitButton(True)), (15, RelayTripped(15.0, 15.0)))
    (trip,) = [e for e in steps[-1].events if e.type == "relay_watchdog"]
    assert trip.reason == "max_unlock_exceeded" and state.physical.pulse_until is None


def test_journal_failure_degrades_codes_but_never_the_exit_button() -> None:
    state, steps = run(_state(("m1", "checked_in")), (0, JournalHealth(False, "disk full")))
    assert Alarm.JOURNAL_ERROR in state.alarms and not state.journal_ok
    out = next_state(state, CodeRequest("m1", Side.EXIT), at(1), POLICY)
    assert out.decision is not None and out.decision.reason == Deny.JOURNAL_ERROR and not relay_effects([out])
    journal = next(e for e in out.effects if isinstance(e, Journal))
    assert not journal.gates, "the denial itself waits for the journal, it does not need it"
    button = next_state(state, ExitButton(True), at(1), POLICY)
    assert relay_effects([button]) == [Energize(M0 + 6)]
    state, steps = run(state, (2, JournalHealth(True)))
    assert state.journal_ok and _types(steps[0]) == ["journal_recovered"]


def test_reader_faults_stand_until_every_reader_recovers() -> None:
    state, steps = run(DoorState(), (0, ReaderHealth("front", False, "no frames")),
                       (1, ReaderHealth("inside", False, "unplugged")), (2, ReaderHealth("front", True)))
    assert Alarm.READER_FAULT in state.alarms and state.faulty_readers == {"inside"}
    state, steps = run(state, (3, ReaderHealth("inside", True)), (4, ReaderHealth("inside", True)))
    assert Alarm.READER_FAULT not in state.alarms and _types(steps[1]) == []


def test_fire_active_at_start_holds_the_door() -> None:
    sensed = Sensed(door_closed=True, bolt_retracted=False, fire=True, exit_pressed=False)
    out = next_state(DoorState(), sensed, at(), POLICY)
    assert relay_effects([out]) == [Hold(True)] and out.state.lock is LockStatus.UNLOCKED


def test_a_restart_forgets_no_standing_alarm(tmp_path: Path) -> None:
    state, steps = run(DoorState(), (0, ExitButton(True)), (1, Tick()), policy=BOLT)
    assert Alarm.UNLOCK_FAULT in state.alarms
    journal = JournalFile(tmp_path / "j.db")
    journal.commit(DoorState(), state, steps[-1].events, now=T0)
    journal.close()
    restored = JournalFile(tmp_path / "j.db").load_state()
    assert restored.alarms == {Alarm.UNLOCK_FAULT} and restored.lock is LockStatus.JAMMED


# --- properties over random sequences ------------------------------------------------------

MEMBERS = ["m0", "m1", "m2", "m3"]
op = st.one_of(
    st.tuples(st.just("req"), st.sampled_from(MEMBERS), st.sampled_from(["entry", "exit", "remote"]),
              st.sampled_from([None, "check_in", "unlock", "checkout_begin", "checkout"])),
    st.tuples(st.just("wait"), st.floats(0, 4 * 3600)),
    st.tuples(st.just("jump_back"), st.floats(0, 3 * 3600)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("restart")),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40), st.integers(1, 3), st.sampled_from([0, 600, 1800]))
def test_properties(ops: list[tuple], seats: int, auto: int) -> None:  # type: ignore[type-arg]
    policy = replace(POLICY, seats=seats, session_limit_seconds=3600, auto_checkout_after_seconds=auto)
    with tempfile.TemporaryDirectory() as tmp:
        journal = JournalFile(Path(tmp) / "j.db")
        state = journal.load_state()
        wall = T0
        now = T0  # door time never goes back (controller.clock); a wall jump back is held at the floor
        checked_out: set[str] = set()
        fired: Counter[tuple[str, str, float]] = Counter()
        for item in ops:
            kind = item[0]
            if kind == "wait":
                wall += item[1]
            elif kind == "jump_back":
                wall -= item[1]
            elif kind == "restart":
                journal.close()
                journal = JournalFile(Path(tmp) / "j.db")
                assert journal.load_state().sessions == state.sessions, "a restart restores every session"
                state = journal.load_state()
                continue
            now = max(now, wall)
            inp: Input
            if kind == "req":
                _, member, source, act = item
                inp = CodeRequest(member, Side(source), Act(act) if act else None)
            else:
                inp = Tick()
            before = state
            out = next_state(state, inp, Now(now, now - T0), policy)
            journal.commit(before, out.state, out.events, now=now)
            state = out.state

            assert 0 <= state.occupied <= seats
            assert len(set(state.sessions)) == state.occupied
            for ev in out.events:
                if ev.type in ("overstay_warning", "overstay"):
                    key = (ev.type, ev.member or "", before.sessions[ev.member].checked_in_at)  # type: ignore[index]
                    fired[key] += 1
                    assert fired[key] == 1, f"{ev.type} fired twice for one stay"
                if ev.type == "checkout":
                    checked_out.add(ev.member or "")
                    if ev.fields.get("auto"):
                        assert now >= before.sessions[ev.member].deadline + auto  # type: ignore[index]
                        assert auto > 0
                if ev.type == "check_in":
                    checked_out.discard(ev.member or "")
            if kind == "req":
                _, member, source, act = item
                effective = act or ("check_in" if source == "entry" else "unlock")
                # The session as it stood at `now`, after any auto-checkout fell due.
                current = next_state(before, Tick(), Now(now, now - T0), policy).state.sessions.get(member)
                decision = out.decision
                assert decision is not None
                if member in checked_out and effective != "check_in":
                    assert not decision.unlock, "no unlock after checkout"
                if current is not None and effective in ("unlock", "check_in"):
                    assert decision.unlock, "a member inside (overdue or not) can always unlock to leave"
                if decision.unlock:
                    assert member in out.state.sessions
                    assert any(isinstance(e, Energize) for e in out.effects), "an unlock moves the relay"
        # auto-checkout frees every seat eventually
        if auto:
            final = next_state(state, Tick(), Now(now + 10 * 3600, now - T0 + 10 * 3600), policy)
            assert final.state.occupied == 0
        journal.close()


def test_a_check_in_whose_bolt_never_moved_is_withdrawn_and_frees_the_seat() -> None:
    """The member never got in: the lock sensor proves the bolt stayed out, so the door withdraws the
    check-in (a checkout, withdrawn, reason unlock_fault) and the store shows the seat free again."""
    entering = CodeRequest("m1", Side.ENTRY, None, b"c" * 8)
    state, steps = run(DoorState(), (0, entering), (1, Tick()), policy=BOLT)
    assert _types(steps[-1]) == ["unlock_fault", "checkout"] and "m1" not in state.sessions
    checkout = steps[-1].events[-1]
    assert checkout.reason == "unlock_fault" and checkout.fields["withdrawn"] is True
    assert checkout.member == "m1"
    assert state.occupied == 0
    # A member already inside whose unlock finds the bolt jammed stays checked in: they are inside.
    inside = DoorState.restored([Session("m2", SessionState.CHECKED_IN, T0, T0 + 7200)])
    state, steps = run(inside, (0, CodeRequest("m2", Side.EXIT, None, b"d" * 8)), (1, Tick()), policy=BOLT)
    assert _types(steps[-1]) == ["unlock_fault"] and "m2" in state.sessions
    # A check-in whose bolt did retract is kept.
    state, _ = run(DoorState(), (0, entering), (0.2, BoltSensor(True)), (1, Tick()), policy=BOLT)
    assert "m1" in state.sessions
