"""Member codes (contract §1): parse, verify and mint `OP1:` COSE_Sign1 codes.

Verification is split in two so each half can be reasoned about alone:

* `parse_code` checks structure only (prefix, base45, CBOR, COSE layout, claim
  types and sizes) and raises `MalformedCode`; it never looks at keys or time.
* `CodeVerifier.verify` runs the contract's checks in the contract's order and
  returns a `Verdict` with the first failing reason.

Replay memory is not here: it lives in the journal (used codes) and in the
same-presentation window, both consulted by the door's admission (controller.admission).

The signed revocation list (contract §4, `OPR1:`) is the same COSE_Sign1 with
other claims: `parse_revocation` and `CodeVerifier.verify_revocation`; so is a door's remote
configuration (contract §11, `OPC1:`): `parse_config_document` and `CodeVerifier.verify_config`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wire.base45 import b45decode, b45encode
from wire.vocab import Act, Deny

PREFIX = "OP1:"
# A member code's QR text is at most this long (contract §1); longer is malformed unread.
MAX_CODE_CHARS = 512
REVOCATION_PREFIX = "OPR1:"
CONFIG_PREFIX = "OPC1:"
RELEASE_PREFIX = "OPU1:"
MAX_RELEASE_CHARS = 256 * 1024
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_FILE_RE = re.compile(r"[A-Za-z0-9._+-]{1,200}")
RELEASE_VERSION_RE = re.compile(r"[0-9A-Za-z.+_-]{1,64}")
_TARGET_RE = re.compile(r"[a-z0-9]+-[a-z0-9_]+")
MAX_CONFIG_CHARS = 64 * 1024  # a door's settings and a few trusted keys: a few hundred bytes
COSE_SIGN1_TAG = 18
ALG_EDDSA = -8
SIGNATURE_BYTES = 64
MEMBER_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_VERSION = 2**63 - 1

# CWT claim keys (RFC 8392) and our private ones.
_ISS, _SUB, _EXP, _IAT, _CTI = 1, 2, 4, 6, 7
_STORES, _ACT, _PRESENCE = "st", "act", "pc"
MAX_PRESENCE_CHARS = 32
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
    presence: str | None = None  # the "pc" claim: the door screen's code the phone scanned (§9)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: Deny | None = None
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


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class _Signed:
    kid: bytes
    claims: dict[Any, Any]
    signed: bytes
    signature: bytes


def _parse_sign1(text: str, prefix: str, max_chars: int) -> _Signed:
    """Prefix, base45, the COSE_Sign1 layout and its protected header; the claims map decoded."""
    if not isinstance(text, str):
        raise MalformedCode("code is not text")
    if len(text) > max_chars:
        raise MalformedCode(f"code is {len(text)} characters, over {max_chars}")
    if not text.startswith(prefix):
        raise MalformedCode(f"code does not start with {prefix!r}")
    try:
        raw = b45decode(text[len(prefix) :])
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
    signed = cbor2.dumps(["Signature1", protected, b"", payload])
    return _Signed(kid, claims, signed, signature)


def parse_code(text: str) -> MemberCode:
    """Check structure only; raise MalformedCode naming the first problem."""
    sign1 = _parse_sign1(text, PREFIX, MAX_CODE_CHARS)
    claims = sign1.claims
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
    act: Act | None = None
    if _ACT in claims:
        raw_act = claims[_ACT]
        if not isinstance(raw_act, str) or raw_act not in Act.__members__.values():
            raise MalformedCode(f"act {raw_act!r} is not one of {', '.join(Act)}")
        act = Act(raw_act)
    presence: str | None = None
    if _PRESENCE in claims:
        raw_presence = claims[_PRESENCE]
        if not isinstance(raw_presence, str) or not 1 <= len(raw_presence) <= MAX_PRESENCE_CHARS:
            raise MalformedCode(f"pc must be text of 1-{MAX_PRESENCE_CHARS} characters")
        presence = raw_presence
    return MemberCode(
        kid=sign1.kid,
        issuer=iss,
        member=sub,
        exp=exp,
        iat=iat,
        cti=cti,
        stores=stores,
        act=act,
        signed=sign1.signed,
        signature=sign1.signature,
        presence=presence,
    )


@dataclass(frozen=True, slots=True)
class RevocationList:
    """A structurally valid `OPR1:` list; trusted only once `verify_revocation` says so."""

    kid: bytes
    issuer: str
    iat: int
    version: int
    members: frozenset[str]
    signed: bytes
    signature: bytes


def revocation_text_limit(max_members: int) -> int:
    """The longest `OPR1:` text a list of `max_members` can be: 64 chars per member id, plus CBOR
    overhead, in base45 (x1.5). A generous bound that keeps a hostile payload from being decoded."""
    return 256 + max_members * 110


def _issued(claims: dict[Any, Any]) -> tuple[str, int]:
    """A signed document's issuer (1) and issue time (6), checked."""
    iss, iat = claims.get(_ISS), claims.get(_IAT)
    if not isinstance(iss, str):
        raise MalformedCode("iss (1) missing or not text")
    if not _is_int(iat):
        raise MalformedCode("iat (6) missing or not an integer")
    return iss, iat


def _versioned(claims: dict[Any, Any]) -> tuple[str, int, int]:
    """Issuer, issue time and the version `v` (0 to 2^63-1) of a list or a configuration, checked."""
    iss, iat = _issued(claims)
    version = claims.get("v")
    if not _is_int(version) or not 0 <= version <= MAX_VERSION:
        raise MalformedCode("v missing or not an integer from 0 to 2^63-1")
    return iss, iat, version


def parse_revocation(text: str, max_members: int) -> RevocationList:
    """Check an `OPR1:` list's structure; raise MalformedCode naming the first problem."""
    sign1 = _parse_sign1(text, REVOCATION_PREFIX, revocation_text_limit(max_members))
    claims = sign1.claims
    iss, iat, version = _versioned(claims)
    members = claims.get("m")
    if not isinstance(members, (list, tuple)):
        raise MalformedCode("m missing or not an array")
    if len(members) > max_members:
        raise MalformedCode(f"m has {len(members)} members, over the limit of {max_members}")
    if not all(isinstance(m, str) and MEMBER_RE.fullmatch(m) for m in members):
        raise MalformedCode("m must hold member ids (1-64 chars of A-Za-z0-9._-)")
    return RevocationList(sign1.kid, iss, iat, version, frozenset(members), sign1.signed, sign1.signature)


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    """A structurally valid `OPC1:` document (contract §11); trusted only once `verify_config` says so.

    `settings` is `{section: {key: value}}` as the door's file would hold it; `door` names the door
    it is for, `{store}/{door}`."""

    kid: bytes
    issuer: str
    iat: int
    version: int
    door: str
    settings: dict[str, dict[str, Any]]
    signed: bytes
    signature: bytes


def config_door(store: str, door: str) -> str:
    """How a config document names its door."""
    return f"{store}/{door}"


def parse_config_document(text: str) -> ConfigDocument:
    """Check an `OPC1:` document's structure; raise MalformedCode naming the first problem."""
    sign1 = _parse_sign1(text, CONFIG_PREFIX, MAX_CONFIG_CHARS)
    claims = sign1.claims
    iss, iat, version = _versioned(claims)
    door, settings = claims.get("door"), claims.get("set")
    if not isinstance(door, str) or len(door) > 129:
        raise MalformedCode("door missing or not text {store}/{door}")
    if not isinstance(settings, dict):
        raise MalformedCode("set missing or not a map of sections")
    plain: dict[str, dict[str, Any]] = {}
    for section, values in settings.items():
        if not isinstance(section, str) or not isinstance(values, dict):
            raise MalformedCode("set must map section names to maps of keys")
        if not all(isinstance(k, str) for k in values):
            raise MalformedCode(f"set.{section}: keys must be text")
        plain[section] = {k: _plain(v) for k, v in values.items()}
    return ConfigDocument(sign1.kid, iss, iat, version, door, plain, sign1.signed, sign1.signature)


def _plain(value: Any) -> Any:
    """CBOR's frozen maps and tuples as the dicts and lists a TOML file would give."""
    if isinstance(value, (dict, cbor2.frozendict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ReleaseTarget:
    """What one target (`bookworm-aarch64`) installs: the hashed lock, and every wheel (the door's own
    and its dependencies') with its SHA-256 and size."""

    lock: str  # one of the files' names
    files: tuple[ReleaseFile, ...]


@dataclass(frozen=True, slots=True)
class ReleaseManifest:
    """A structurally valid `OPU1:` release (contract §11); trusted only once `verify_release` says so."""

    kid: bytes
    issuer: str
    iat: int
    version: str
    targets: dict[str, ReleaseTarget]
    signed: bytes
    signature: bytes


def parse_release(text: str) -> ReleaseManifest:
    """Check an `OPU1:` manifest's structure; raise MalformedCode naming the first problem."""
    sign1 = _parse_sign1(text, RELEASE_PREFIX, MAX_RELEASE_CHARS)
    claims = sign1.claims
    iss, iat = _issued(claims)
    version, targets = claims.get("version"), claims.get("targets")
    if not isinstance(version, str) or not RELEASE_VERSION_RE.fullmatch(version):
        raise MalformedCode("version missing or not 1-64 characters of 0-9A-Za-z.+_-")
    if not isinstance(targets, dict) or not targets:
        raise MalformedCode("targets missing or not a map of targets")
    parsed: dict[str, ReleaseTarget] = {}
    for target, body in targets.items():
        if not isinstance(target, str) or not _TARGET_RE.fullmatch(target) or not isinstance(body, dict):
            raise MalformedCode("targets must map RELEASE-ARCH names to maps")
        files, lock = body.get("files"), body.get("lock")
        if not isinstance(files, (list, tuple)) or not files:
            raise MalformedCode(f"targets.{target}.files missing or empty")
        entries = []
        for entry in files:
            if (not isinstance(entry, (list, tuple)) or len(entry) != 3 or not isinstance(entry[0], str)
                    or not _FILE_RE.fullmatch(entry[0]) or entry[0].startswith(".")
                    or not isinstance(entry[1], str) or not _SHA256_RE.fullmatch(entry[1])
                    or not _is_int(entry[2]) or entry[2] < 0):
                raise MalformedCode(f"targets.{target}.files: each is [name, sha256 hex, size]")
            entries.append(ReleaseFile(entry[0], entry[1], entry[2]))
        if not isinstance(lock, str) or lock not in {e.name for e in entries}:
            raise MalformedCode(f"targets.{target}.lock missing or not one of its files")
        parsed[target] = ReleaseTarget(lock, tuple(entries))
    return ReleaseManifest(sign1.kid, iss, iat, version, parsed, sign1.signed, sign1.signature)


def mint_release(private_key: bytes, *, kid: str, issuer: str, iat: int, version: str,
                 targets: Mapping[str, ReleaseTarget]) -> str:
    """Sign a release manifest (contract §11). For the pass service and tests."""
    claims: dict[Any, Any] = {_ISS: issuer, _IAT: iat, "version": version, "targets": {
        name: {"lock": t.lock, "files": [[f.name, f.sha256, f.size] for f in t.files]}
        for name, t in targets.items()}}
    return RELEASE_PREFIX + _sign1(private_key, kid, claims, False)


class CodeVerifier:
    """Stateless checks of contract §1, in the contract's order (all but `replayed`)."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        issuer: str,
        store: str,
        max_clock_skew_seconds: int,
        max_code_ttl_seconds: int,
        max_command_ttl_seconds: int,
        command_clock_skew_seconds: int,
    ) -> None:
        self._keys: dict[bytes, Ed25519PublicKey] = {
            name.encode("utf-8"): Ed25519PublicKey.from_public_bytes(raw) for name, raw in keys.items()
        }
        self.issuer = issuer
        self.store = store
        self.skew = max_clock_skew_seconds
        self.command_skew = command_clock_skew_seconds
        self.max_code_ttl = max_code_ttl_seconds
        self.max_command_ttl = max_command_ttl_seconds

    def verify(
        self, text: str, now: float, *, revoked: Container[str] = (), command: bool = False
    ) -> Verdict:
        """Commands get only `command_clock_skew_seconds` of allowance: a command queued at the
        broker past its ttl must not run (contract §4), so its ttl is not stretched by the
        minute a phone's camera code gets."""
        try:
            code = parse_code(text)
        except MalformedCode as exc:
            return Verdict(False, Deny.MALFORMED, detail=str(exc))
        key = self._keys.get(code.kid)
        if key is None:
            return Verdict(False, Deny.UNKNOWN_KEY, detail=f"kid {code.kid!r} is not trusted")
        try:
            key.verify(code.signature, code.signed)
        except InvalidSignature:
            return Verdict(False, Deny.BAD_SIGNATURE)
        # From here on the claims are authentic, so the member may be named in the verdict.
        if code.issuer != self.issuer:
            return Verdict(False, Deny.WRONG_ISSUER, code)
        max_ttl = self.max_command_ttl if command else self.max_code_ttl
        if code.exp - code.iat > max_ttl:
            return Verdict(False, Deny.TTL_TOO_LONG, code, f"ttl {code.exp - code.iat}s over {max_ttl}s")
        skew = self.command_skew if command else self.skew
        if code.iat > now + skew:
            return Verdict(False, Deny.NOT_YET_VALID, code)
        if now > code.exp + skew:
            return Verdict(False, Deny.EXPIRED, code)
        if code.stores is not None and self.store not in code.stores:
            return Verdict(False, Deny.WRONG_STORE, code)
        if code.member in revoked:
            return Verdict(False, Deny.REVOKED, code)
        return Verdict(True, None, code)

    def verify_revocation(self, text: str, max_members: int) -> RevocationList:
        """Structure, trusted key, signature and issuer of an `OPR1:` list; MalformedCode says why not."""
        listing = parse_revocation(text, max_members)
        self._check_signed(listing.kid, listing.signed, listing.signature, listing.issuer)
        return listing

    def verify_config(self, text: str) -> ConfigDocument:
        """Structure, trusted key, signature and issuer of an `OPC1:` document; MalformedCode says why
        not. (Whether it is for this door, newer, and holds good values is the door's to decide.)"""
        document = parse_config_document(text)
        self._check_signed(document.kid, document.signed, document.signature, document.issuer)
        return document

    def verify_release(self, text: str) -> ReleaseManifest:
        """Structure, trusted key, signature and issuer of an `OPU1:` release; MalformedCode says why not."""
        manifest = parse_release(text)
        self._check_signed(manifest.kid, manifest.signed, manifest.signature, manifest.issuer)
        return manifest

    def _check_signed(self, kid: bytes, signed: bytes, signature: bytes, issuer: str) -> None:
        key = self._keys.get(kid)
        if key is None:
            raise MalformedCode(f"kid {kid!r} is not trusted")
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            raise MalformedCode("bad signature") from None
        if issuer != self.issuer:
            raise MalformedCode(f"issuer {issuer!r} is not {self.issuer!r}")


def used_code_expiry(code: MemberCode, skew: int) -> float:
    """Until when a cti must be remembered: after that the code is expired anyway."""
    return float(code.exp + skew)


def _sign1(private_key: bytes, kid: str, claims: dict[Any, Any], tagged: bool) -> str:
    protected = cbor2.dumps({_HDR_ALG: ALG_EDDSA, _HDR_KID: kid.encode("utf-8")})
    payload = cbor2.dumps(claims)
    signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(
        cbor2.dumps(["Signature1", protected, b"", payload])
    )
    body: Any = [protected, {}, payload, signature]
    if tagged:
        body = cbor2.CBORTag(COSE_SIGN1_TAG, body)
    return b45encode(cbor2.dumps(body))


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
    presence: str | None = None,
    tagged: bool = False,
) -> str:
    """Sign a code. For tests, benches and `doorctl issue-code`; a door never holds a private key."""
    claims: dict[Any, Any] = {_ISS: issuer, _SUB: member, _EXP: exp, _IAT: iat, _CTI: cti}
    if stores is not None:
        claims[_STORES] = stores
    if act is not None:
        claims[_ACT] = str(act)
    if presence is not None:
        claims[_PRESENCE] = presence
    return PREFIX + _sign1(private_key, kid, claims, tagged)


def mint_revocation(
    private_key: bytes, *, kid: str, issuer: str, iat: int, version: int, members: list[str]
) -> str:
    """Sign a revocation list (contract §4). For the pass service, tests and `doorctl issue-revocation`."""
    claims: dict[Any, Any] = {_ISS: issuer, _IAT: iat, "v": version, "m": list(members)}
    return REVOCATION_PREFIX + _sign1(private_key, kid, claims, False)


def mint_config(private_key: bytes, *, kid: str, issuer: str, iat: int, version: int, door: str,
                settings: Mapping[str, Mapping[str, Any]]) -> str:
    """Sign a door's remote configuration (contract §11). For the pass service and tests."""
    claims: dict[Any, Any] = {_ISS: issuer, _IAT: iat, "v": version, "door": door,
                              "set": {section: dict(values) for section, values in settings.items()}}
    return CONFIG_PREFIX + _sign1(private_key, kid, claims, False)
