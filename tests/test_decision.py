"""The pure decision function: every cell of contract §3's table, time limits, and properties."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.decision import (
    DoorState,
    ExitRequest,
    Outcome,
    Policy,
    Rejected,
    Request,
    Session,
    Tick,
    next_due,
    next_state,
    vacancy_symbol,
)
from controller.journal import Journal

POLICY = Policy(seats=2, session_limit_seconds=7200, auto_checkout_after_seconds=1800)
T0 = 1_800_000_000.0


def _state(*sessions: tuple[str, str]) -> DoorState:
    return DoorState.of([Session(m, st, T0, T0 + 7200) for m, st in sessions])  # type: ignore[arg-type]


def _req(state: DoorState, source: str, act: str | None, member: str = "m1") -> Outcome:
    return next_state(state, Request(member, source, act, b"c" * 8), T0 + 60, POLICY)  # type: ignore[arg-type]


# Columns of the table: (source, act).
CODE_ENTRY, CODE_EXIT = ("entry", None), ("exit", None)
ACTS = [("remote", a) for a in ("check_in", "unlock", "checkout_begin", "checkout")]


@pytest.mark.parametrize("column", [CODE_EXIT, *ACTS[1:]], ids=str)
def test_none_denied_not_checked_in(column: tuple[str, str | None]) -> None:
    out = _req(_state(), *column)
    assert not out.decision.ok and not out.decision.unlock
    assert out.decision.reason == "not_checked_in"
    assert [e.type for e in out.events] == ["denied"] and out.events[0].reason == "not_checked_in"
    assert out.state.occupied == 0


CHECK_IN_COLUMNS = [CODE_ENTRY, ACTS[0], ("exit", "check_in"), ("entry", "check_in")]


@pytest.mark.parametrize("column", CHECK_IN_COLUMNS, ids=str)
def test_none_checks_in_and_unlocks(column: tuple[str, str | None]) -> None:
    out = _req(_state(), *column)
    assert out.decision.ok and out.decision.unlock and out.decision.result == "check_in"
    assert [e.type for e in out.events] == ["check_in", "unlock"]
    session = out.state.sessions["m1"]
    assert session.state == "checked_in" and session.deadline == T0 + 60 + 7200


@pytest.mark.parametrize("column", [CODE_ENTRY, ACTS[0]], ids=str)
def test_none_denied_full(column: tuple[str, str | None]) -> None:
    out = _req(_state(("a", "checked_in"), ("b", "checking_out")), *column)
    assert not out.decision.ok and out.decision.reason == "full" and not out.decision.unlock
    assert [e.type for e in out.events] == ["denied"]
    assert "m1" not in out.state.sessions


@pytest.mark.parametrize("held", ["checked_in", "checking_out"])
@pytest.mark.parametrize("column", [CODE_ENTRY, CODE_EXIT, ACTS[0], ACTS[1]], ids=str)
def test_in_store_unlocks(held: str, column: tuple[str, str | None]) -> None:
    state = _state(("m1", held))
    out = _req(state, *column)
    assert out.decision.ok and out.decision.unlock and out.decision.result == "unlock"
    assert [e.type for e in out.events] == ["unlock"]
    assert out.state == state, "an unlock changes no session"


def test_checked_in_checkout_begin() -> None:
    out = _req(_state(("m1", "checked_in")), *ACTS[2])
    assert out.decision.ok and not out.decision.unlock and out.decision.result == "checkout_begin"
    assert out.state.sessions["m1"].state == "checking_out"
    assert [e.type for e in out.events] == ["checkout_begin"]


def test_checking_out_checkout_begin_is_nothing_new() -> None:
    state = _state(("m1", "checking_out"))
    out = _req(state, *ACTS[2])
    assert out.decision.ok and not out.decision.unlock
    assert out.events == () and out.state == state


@pytest.mark.parametrize("held", ["checked_in", "checking_out"])
def test_checkout_closes_and_frees_the_seat(held: str) -> None:
    state = _state(("m1", held), ("m2", "checked_in"))
    assert state.available(POLICY) == 0
    out = _req(state, *ACTS[3])
    assert out.decision.ok and not out.decision.unlock and out.decision.result == "checkout"
    assert "m1" not in out.state.sessions and out.state.available(POLICY) == 1
    (ev,) = out.events
    assert ev.type == "checkout" and ev.fields["auto"] is False
    # After checkout: no more unlocks, exactly as the member guide warns.
    for column in (CODE_EXIT, ACTS[1], ACTS[2], ACTS[3]):
        again = _req(out.state, *column)
        assert not again.decision.unlock and again.decision.reason == "not_checked_in"


def test_exit_button_and_rejections() -> None:
    out = next_state(_state(), ExitRequest(), T0, POLICY)
    assert out.decision.unlock and [(e.type, e.source) for e in out.events] == [("unlock", "button")]
    out = next_state(_state(), Rejected("expired", "entry", "m9", b"x" * 8), T0, POLICY)
    assert not out.decision.unlock and out.decision.reason == "expired"
    (ev,) = out.events
    assert (ev.type, ev.member, ev.reason, ev.fields["cti"]) == ("denied", "m9", "expired", (b"x" * 8).hex())


def test_vacancy_symbols() -> None:
    assert [vacancy_symbol(n) for n in (5, 2, 1, 0)] == ["○", "○", "△", "×"]


def test_time_limits_fire_once_in_order() -> None:
    state = next_state(DoorState(), Request("m1", "entry"), T0, POLICY).state
    deadline = T0 + 7200
    seen: list[str] = []
    for t in (T0 + 100, deadline - 901, deadline - 900, deadline - 10, deadline, deadline + 5,
              deadline + 1799, deadline + 1800, deadline + 5000):
        out = next_state(state, Tick(), t, POLICY)
        seen += [e.type for e in out.events]
        state = out.state
        if t == deadline - 900:
            assert seen == ["overstay_warning"]
        if t == deadline:
            assert seen == ["overstay_warning", "overstay"] and state.sessions["m1"].overdue
    assert seen == ["overstay_warning", "overstay", "checkout"]
    assert state.occupied == 0


def test_short_limit_warns_a_quarter_early() -> None:
    policy = Policy(seats=2, session_limit_seconds=40 * 60, auto_checkout_after_seconds=0)
    state = next_state(DoorState(), Request("m1", "entry"), T0, policy).state
    assert not next_state(state, Tick(), T0 + 30 * 60 - 1, policy).events
    assert [e.type for e in next_state(state, Tick(), T0 + 30 * 60, policy).events] == ["overstay_warning"]
    # auto checkout 0 = never
    late = next_state(state, Tick(), T0 + 10**7, policy)
    assert [e.type for e in late.events] == ["overstay_warning", "overstay"] and late.state.occupied == 1
    assert next_due(late.state, policy) is None


def test_overdue_member_can_always_leave() -> None:
    state = next_state(DoorState(), Request("m1", "entry"), T0, POLICY).state
    state = next_state(state, Tick(), T0 + 7200 + 1, POLICY).state
    assert state.sessions["m1"].overdue
    out = next_state(state, Request("m1", "exit"), T0 + 7300, POLICY)
    assert out.decision.unlock and out.events[-1].fields.get("overdue") is True


def test_a_request_after_the_auto_checkout_time_sees_the_session_gone() -> None:
    state = next_state(DoorState(), Request("m1", "entry"), T0, POLICY).state
    out = next_state(state, Request("m1", "exit"), T0 + 7200 + 1800 + 1, POLICY)
    assert [e.type for e in out.events] == ["overstay_warning", "overstay", "checkout", "denied"]
    assert out.decision.reason == "not_checked_in"


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
def test_properties(ops: list[tuple], seats: int, auto: int) -> None:
    policy = Policy(seats=seats, session_limit_seconds=3600, auto_checkout_after_seconds=auto)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j.db")
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
                journal = Journal(Path(tmp) / "j.db")
                assert journal.load_state() == state, "a restart restores every session"
                state = journal.load_state()
                continue
            now = max(now, wall)
            if kind == "req":
                _, member, source, act = item
                inp = Request(member, source, act)
            else:
                inp = Tick()
            before = state
            out = next_state(state, inp, now, policy)
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
                current = next_state(before, Tick(), now, policy).state.sessions.get(member)
                if member in checked_out and effective != "check_in":
                    assert not out.decision.unlock, "no unlock after checkout"
                if current is not None and effective in ("unlock", "check_in"):
                    assert out.decision.unlock, "a member inside (overdue or not) can always unlock to leave"
                if out.decision.unlock:
                    assert member in out.state.sessions
        # auto-checkout frees every seat eventually
        if auto:
            final = next_state(state, Tick(), now + 10 * 3600, policy)
            assert final.state.occupied == 0
        journal.close()
