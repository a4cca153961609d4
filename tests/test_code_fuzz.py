"""Hostile input never raises: every input to the verifier gets a verdict with a contract reason."""

from __future__ import annotations

import contextlib
from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import parse_config
from controller.core import verifier_for
from tests.helpers import NOW, code, config_doc
from wire.base45 import b45decode, b45encode
from wire.codes import PREFIX, MalformedCode, parse_revocation
from wire.vocab import VERIFIER_ORDER

VERIFIER = verifier_for(parse_config(config_doc()))
DENY_REASONS = frozenset(VERIFIER_ORDER)


def _check(text: str) -> None:
    verdict = VERIFIER.verify(text, NOW)
    assert verdict.ok or verdict.reason in DENY_REASONS


cbor_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.binary(max_size=80), st.text(max_size=40),
)
cbor_trees = st.recursive(
    cbor_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.integers(-10, 10), st.text(max_size=4)), children, max_size=5),
        st.builds(cbor2.CBORTag, st.sampled_from([18, 1, 2, 24, 55799, 9999]), children),
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=600))
def test_random_text(text: str) -> None:
    _check(text)
    _check(PREFIX + text)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_behind_the_prefix(data: bytes) -> None:
    _check(PREFIX + b45encode(data))


@settings(max_examples=400, deadline=None)
@given(cbor_trees)
def test_random_cbor_trees(tree: Any) -> None:
    _check(PREFIX + b45encode(cbor2.dumps(tree)))


@settings(max_examples=300, deadline=None)
@given(st.lists(cbor_trees, min_size=4, max_size=4), st.booleans())
def test_cose_shaped_trees(items: list[Any], wrap_inner: bool) -> None:
    # Four items, some of them CBOR-in-bytes, so the parser gets past the outer layer.
    if wrap_inner:
        items[0] = cbor2.dumps(items[0])
        items[2] = cbor2.dumps(items[2])
    _check(PREFIX + b45encode(cbor2.dumps(items)))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.data())
def test_truncations_and_bit_flips_of_a_valid_code(cut: int, data: st.DataObject) -> None:
    valid = code(act=data.draw(st.sampled_from([None, "unlock"])))
    _check(valid[:cut])
    raw = bytearray(b45decode(valid[len(PREFIX):]))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    verdict = VERIFIER.verify(PREFIX + b45encode(bytes(raw)), NOW)
    assert not verdict.ok, "a flipped bit must never verify"
    assert verdict.reason in DENY_REASONS


def test_deep_nesting_and_huge_lengths_are_malformed() -> None:
    deep = b"\x81" * 300 + b"\x00"
    assert VERIFIER.verify(PREFIX + b45encode(deep), NOW).reason == "malformed"
    # A byte string claiming 2**63 bytes must not allocate or hang.
    huge = b"\x84\x5b" + (2**63).to_bytes(8, "big")
    assert VERIFIER.verify(PREFIX + b45encode(huge), NOW).reason == "malformed"
    assert VERIFIER.verify("OP1:" + "0" * 508, NOW).reason == "malformed"


def test_base45_roundtrip_and_strictness() -> None:
    for data in (b"", b"\x00", b"ab", b"\xff\xff", bytes(range(256))):
        assert b45decode(b45encode(data)) == data
    assert b45encode(b"AB") == "BB8"  # RFC 9285 example
    for bad in ("A", "GGW", "GG", "ab", "AB#"):  # dangling char, overflowing triple/pair, bad chars
        try:
            b45decode(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} decoded")


@settings(max_examples=300, deadline=None)
@given(cbor_trees)
def test_any_revocation_payload_is_refused_cleanly(tree: Any) -> None:
    """A list on the broker's retained topic is anyone's input: it parses or is MalformedCode."""
    try:
        body = cbor2.dumps(tree)
    except Exception:  # not encodable: hypothesis built something CBOR has no form for
        return
    for text in ("OPR1:" + b45encode(body), "OPR1:" + b45encode(cbor2.dumps([b"", {}, body, b"x" * 64]))):
        with contextlib.suppress(MalformedCode):
            parse_revocation(text, max_members=10)
