"""Member codes (contract §1): parse, verify and mint `OP1:` COSE_Sign1 codes.

Verification is split in two so each half can be reasoned about alone:

* `parse_code` checks structure only (prefix, base45, CBOR, COSE layout, claim
  types and sizes) and raises `MalformedCode`; it never looks at keys or time.
* `CodeVerifier.verify` runs the contract's checks in the contract's order and
  returns a `Verdict` with the first failing reason.

Replay memory is not here: it lives in the journal, and `classify_reuse`
decides what a second sighting of a `cti` means.
"""

from __future__ import annotations

import io
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controller.base45 import b45decode, b45encode

PREFIX = "OP1:"
MAX_CODE_CHARS = 512
COSE_SIGN1_TAG = 18
ALG_EDDSA = -8
SIGNATURE_BYTES = 64
MEMBER_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
ACTS = ("check_in", "unlock", "checkout_begin", "checkout")
# A second sighting by the same reader within this window is the same presentation.
SAME_PRESENTATION_SECONDS = 5.0

# Deny reasons in the order the contract checks them.
DENY_REASONS = (
    "malformed",
    "unknown_key",
    "bad_signature",
    "wrong_issuer",
    "ttl_too_long",
    "not_yet_valid",
    "expired",
    "wrong_store",
    "revoked",
    "replayed",
)

Act = Literal["check_in", "unlock", "checkout_begin", "checkout"]

# CWT claim keys (RFC 8392) and our private ones.
_ISS, _SUB, _EXP, _IAT, _CTI = 1, 2, 4, 6, 7
_STORES, _ACT = "st", "act"
_HDR_ALG, _HDR_KID = 1, 4
# Nesting deeper than this is never a member code; a low bound keeps hostile input cheap.
_MAX_CBOR_DEPTH = 8


class MalformedCode(ValueError):
    """The text is not a structurally valid member code. The message says why."""


@dataclass(frozen=True, slots=True)
class MemberCode:
    """A structurally valid code; not yet trusted until `CodeVerifier.verify` says ok."""

    kid: bytes
    issuer: str
    member: str
    exp: int
    iat: int
    cti: bytes
    stores: tuple[str, ...] | None
    act: Act | None
    signed: bytes  # the Sig_structure the signature covers
    signature: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str | None = None
    code: MemberCode | None = None  # set once the signature checked out, so the member is known
    detail: str = ""

    @property
    def member(self) -> str | None:
        return self.code.member if self.code else None


def _new_decoder() -> cbor2.CBORDecoder:
    return cbor2.CBORDecoder(io.BytesIO(b""), max_depth=_MAX_CBOR_DEPTH, allow_duplicate_keys=False)


def _decode_cbor(decoder: cbor2.CBORDecoder, data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item filling `data`. One decoder serves a code's three layers."""
    stream = io.BytesIO(data)
    decoder.fp = stream
    try:
        value = decoder.decode()
    except Exception as exc:  # cbor2 raises several types (and RecursionError/MemoryError on abuse)
        raise MalformedCode(f"{what}: not valid CBOR ({exc})") from None
    if stream.tell() != len(data):
        raise MalformedCode(f"{what}: trailing bytes after CBOR item")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_code(text: str) -> MemberCode:
    """Check structure only; raise MalformedCode naming the first problem."""
    if not isinstance(text, str):
        raise MalformedCode("code is not text")
    if len(text) > MAX_CODE_CHARS:
        raise MalformedCode(f"code is {len(text)} characters, over {MAX_CODE_CHARS}")
    if not text.startswith(PREFIX):
        raise MalformedCode(f"code does not start with {PREFIX!r}")
    try:
        raw = b45decode(text[len(PREFIX) :])
    except ValueError as exc:
        raise MalformedCode(f"base45: {exc}") from None
    if not raw:
        raise MalformedCode("empty code")

    decoder = _new_decoder()
    outer = _decode_cbor(decoder, raw, "COSE_Sign1")
    if isinstance(outer, cbor2.CBORTag):
        if outer.tag != COSE_SIGN1_TAG:
            raise MalformedCode(f"unexpected CBOR tag {outer.tag}")
        outer = outer.value
    # cbor2 hands back a tagged array as a tuple, an untagged one as a list.
    if not isinstance(outer, (list, tuple)) or len(outer) != 4:
        raise MalformedCode("COSE_Sign1 must be an array of 4 items")
    protected, unprotected, payload, signature = outer
    if not isinstance(protected, bytes):
        raise MalformedCode("protected header is not a byte string")
    if not isinstance(unprotected, (dict, cbor2.frozendict)):
        raise MalformedCode("unprotected header is not a map")
    if not isinstance(payload, bytes):
        raise MalformedCode("payload is not a byte string")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise MalformedCode(f"signature is not {SIGNATURE_BYTES} bytes")

    header = _decode_cbor(decoder, protected, "protected header")
    if not isinstance(header, dict) or set(header) != {_HDR_ALG, _HDR_KID}:
        raise MalformedCode("protected header must be the map {1: alg, 4: kid}")
    if header[_HDR_ALG] != ALG_EDDSA or not _is_int(header[_HDR_ALG]):
        raise MalformedCode(f"algorithm {header[_HDR_ALG]!r} is not EdDSA (-8)")
    kid = header[_HDR_KID]
    if not isinstance(kid, bytes) or not 1 <= len(kid) <= 16:
        raise MalformedCode("kid must be 1-16 bytes")

    claims = _decode_cbor(decoder, payload, "payload")
    if not isinstance(claims, dict):
        raise MalformedCode("payload is not a map of claims")
    iss = claims.get(_ISS)
    if not isinstance(iss, str):
        raise MalformedCode("iss (1) missing or not text")
    sub = claims.get(_SUB)
    if not isinstance(sub, str) or not MEMBER_RE.fullmatch(sub):
        raise MalformedCode("sub (2) missing or not 1-64 chars of A-Za-z0-9._-")
    exp, iat = claims.get(_EXP), claims.get(_IAT)
    if not _is_int(exp):
        raise MalformedCode("exp (4) missing or not an integer")
    if not _is_int(iat):
        raise MalformedCode("iat (6) missing or not an integer")
    if exp < iat:
        raise MalformedCode("exp (4) is before iat (6)")
    cti = claims.get(_CTI)
    if not isinstance(cti, bytes) or not 8 <= len(cti) <= 32:
        raise MalformedCode("cti (7) missing or not 8-32 bytes")
    stores: tuple[str, ...] | None = None
    if _STORES in claims:
        raw_stores = claims[_STORES]
        if not isinstance(raw_stores, (list, tuple)) or not all(isinstance(s, str) for s in raw_stores):
            raise MalformedCode("st must be an array of text")
        stores = tuple(raw_stores)
    act = claims.get(_ACT)
    if _ACT in claims and act not in ACTS:
        raise MalformedCode(f"act {act!r} is not one of {', '.join(ACTS)}")

    signed = cbor2.dumps(["Signature1", protected, b"", payload])
    return MemberCode(
        kid=kid,
        issuer=iss,
        member=sub,
        exp=exp,
        iat=iat,
        cti=cti,
        stores=stores,
        act=act,
        signed=signed,
        signature=signature,
    )


class CodeVerifier:
    """Stateless checks of contract §1, in the contract's order (all but `replayed`)."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        issuer: str,
        store: str,
        max_clock_skew_seconds: int = 60,
        max_code_ttl_seconds: int = 300,
        max_command_ttl_seconds: int = 60,
    ) -> None:
        self._keys: dict[bytes, Ed25519PublicKey] = {
            name.encode("utf-8"): Ed25519PublicKey.from_public_bytes(raw) for name, raw in keys.items()
        }
        self.issuer = issuer
        self.store = store
        self.skew = max_clock_skew_seconds
        self.max_code_ttl = max_code_ttl_seconds
        self.max_command_ttl = max_command_ttl_seconds

    def verify(
        self, text: str, now: float, *, revoked: Container[str] = (), command: bool = False
    ) -> Verdict:
        try:
            code = parse_code(text)
        except MalformedCode as exc:
            return Verdict(False, "malformed", detail=str(exc))
        key = self._keys.get(code.kid)
        if key is None:
            return Verdict(False, "unknown_key", detail=f"kid {code.kid!r} is not trusted")
        try:
            key.verify(code.signature, code.signed)
        except InvalidSignature:
            return Verdict(False, "bad_signature")
        # From here on the claims are authentic, so the member may be named in the verdict.
        if code.issuer != self.issuer:
            return Verdict(False, "wrong_issuer", code)
        max_ttl = self.max_command_ttl if command else self.max_code_ttl
        if code.exp - code.iat > max_ttl:
            return Verdict(False, "ttl_too_long", code, f"ttl {code.exp - code.iat}s over {max_ttl}s")
        if code.iat > now + self.skew:
            return Verdict(False, "not_yet_valid", code)
        if now > code.exp + self.skew:
            return Verdict(False, "expired", code)
        if code.stores is not None and self.store not in code.stores:
            return Verdict(False, "wrong_store", code)
        if code.member in revoked:
            return Verdict(False, "revoked", code)
        return Verdict(True, None, code)


ReuseVerdict = Literal["fresh", "ignored", "replayed"]


def classify_reuse(
    prior_reader: str | None, prior_accepted_at: float | None, reader: str, now: float
) -> ReuseVerdict:
    """What a sighting of an already-accepted cti means (contract §1).

    The same reader within 5 s of the first acceptance is the same presentation
    (a camera sees the phone in many frames); anything else is a replay.
    """
    if prior_accepted_at is None:
        return "fresh"
    if prior_reader == reader and 0 <= now - prior_accepted_at <= SAME_PRESENTATION_SECONDS:
        return "ignored"
    return "replayed"


def used_code_expiry(code: MemberCode, skew: int) -> float:
    """Until when a cti must be remembered: after that the code is expired anyway."""
    return float(code.exp + skew)


def mint_code(
    private_key: bytes,
    *,
    kid: str,
    issuer: str,
    member: str,
    iat: int,
    exp: int,
    cti: bytes,
    stores: list[str] | None = None,
    act: str | None = None,
    tagged: bool = False,
) -> str:
    """Sign a code. For tests, benches and `doorctl issue-code`; a door never holds a private key."""
    claims: dict[Any, Any] = {_ISS: issuer, _SUB: member, _EXP: exp, _IAT: iat, _CTI: cti}
    if stores is not None:
        claims[_STORES] = stores
    if act is not None:
        claims[_ACT] = act
    protected = cbor2.dumps({_HDR_ALG: ALG_EDDSA, _HDR_KID: kid.encode("utf-8")})
    payload = cbor2.dumps(claims)
    signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(
        cbor2.dumps(["Signature1", protected, b"", payload])
    )
    body: Any = [protected, {}, payload, signature]
    if tagged:
        body = cbor2.CBORTag(COSE_SIGN1_TAG, body)
    return PREFIX + b45encode(cbor2.dumps(body))
