"""The door's remote configuration (contract §11): settings the console edits, signed by the service,
retained on the door's `config` topic.

Where a key is set both ways, the service's document wins: the console is where an operator changes
seats, limits, lock times, presence and the trusted keys, and a technician's file keeps what only the
door can know (pins, readers, broker, storage), which a document can never set. `doorctl doctor`
names every key the document overrides.

A document is applied whole or not at all: it must verify (a key the door trusts now, the issuer), be
for this door, be newer than the applied one, set only keys a document may set, and give, merged
with the file, a configuration the file's own rules accept. The door keeps it in its state directory
(so it survives restarts; the retained message brings it back to a new SD card) and restarts at a
quiet moment to run with it: every part of the door then starts from one checked configuration.

Everything here runs on the reactor thread, but `load_effective`, which `doorctl run` calls first.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controller.config import Config, ConfigError, parse_config, read_config_file
from controller.core import verifier_for
from controller.files import write_atomic
from wire.codes import ConfigDocument, MalformedCode, config_door, parse_config_document
from wire.fleet import ConfigRefusal, remote_key_problem

log = logging.getLogger("doorctl.remote")

DOCUMENT_FILE = "remote-config.opc"


def merged(file_doc: dict[str, Any], settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The file's TOML with a document's settings over it (a table such as `credentials.keys` is
    replaced whole, so a key the operator removed is gone)."""
    out = copy.deepcopy(file_doc)
    for section, values in settings.items():
        table = out.setdefault(section, {})
        if isinstance(table, dict):
            table.update(copy.deepcopy(values))
    return out


@dataclass(frozen=True)
class Refused:
    version: int | None
    reason: ConfigRefusal
    detail: str

    def __str__(self) -> str:
        version = "?" if self.version is None else str(self.version)
        return f"v{version} {self.reason}: {self.detail}"


@dataclass(frozen=True)
class Checked:
    document: ConfigDocument
    text: str
    config: Config


def check(text: str, file_doc: dict[str, Any], current: Config, applied: int | None,
          source_path: Path | None) -> Checked | Refused:
    """Whether the door may apply this document now, and the configuration it gives."""
    try:
        document = verifier_for(current).verify_config(text)
    except MalformedCode as exc:
        try:
            version: int | None = parse_config_document(text).version
        except MalformedCode:
            version = None
        return Refused(version, ConfigRefusal.MALFORMED, str(exc))
    return _fits(document, text, file_doc, current, applied, source_path)


def _fits(document: ConfigDocument, text: str, file_doc: dict[str, Any], current: Config,
          applied: int | None, source_path: Path | None) -> Checked | Refused:
    v = document.version
    me = config_door(current.door.store, current.door.name)
    if document.door != me:
        return Refused(v, ConfigRefusal.WRONG_DOOR, f"for {document.door!r}, this door is {me!r}")
    if applied is not None and v <= applied:
        return Refused(v, ConfigRefusal.NOT_NEWER, f"version {v} is not newer than the applied {applied}")
    problems = [p for section, values in document.settings.items() for key in values
                if (p := remote_key_problem(section, key)) is not None]
    if problems:
        return Refused(v, ConfigRefusal.NOT_REMOTE, "; ".join(problems))
    try:
        config = parse_config(merged(file_doc, document.settings), source_path=source_path)
    except ConfigError as exc:
        return Refused(v, ConfigRefusal.INVALID, "; ".join(exc.problems))
    return Checked(document, text, config)


@dataclass(frozen=True)
class Effective:
    """What `doorctl run` starts with: the file, and over it the applied document if any."""

    config: Config
    file_doc: dict[str, Any]
    file_config: Config
    document: ConfigDocument | None
    problem: str | None  # why a kept document is not used (the door then runs on its file)


def document_path(config: Config) -> Path:
    return config.storage.state_dir / DOCUMENT_FILE


def load_effective(path: str | Path) -> Effective:
    """The file (ConfigError when it is broken: the door never starts on a broken file), and the kept
    document over it when it still fits (a file edited since may no longer agree with it)."""
    file_doc = read_config_file(path)
    file_config = parse_config(file_doc, source_path=Path(path))
    kept = document_path(file_config)
    try:
        text = kept.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return Effective(file_config, file_doc, file_config, None, None)
    except (OSError, UnicodeDecodeError) as exc:
        return Effective(file_config, file_doc, file_config, None, f"{kept}: cannot be read ({exc})")
    try:
        document = parse_config_document(text)
    except MalformedCode as exc:
        return Effective(file_config, file_doc, file_config, None, f"{kept}: {exc}")
    # The kept document was verified when it came; it is the door's own state, as its journal is.
    # Checked again against the file as it is now, since the technician may have edited it.
    fit = _fits(document, text, file_doc, file_config, None, Path(path))
    if isinstance(fit, Refused):
        return Effective(file_config, file_doc, file_config, None, f"the kept v{document.version} "
                         f"no longer fits the file: {fit.detail}")
    return Effective(fit.config, file_doc, file_config, document, None)


def overridden(effective: Effective) -> list[str]:
    """One line per key the document sets: its value, and what the file says (the service's wins)."""
    if effective.document is None:
        return []
    lines = []
    for section, values in sorted(effective.document.settings.items()):
        table = effective.file_doc.get(section, {})
        for key, value in sorted(values.items()):
            shown = "(a table)" if isinstance(value, dict) else repr(value)
            if isinstance(table, dict) and key in table:
                lines.append(f"{section}.{key} = {shown} from the service, over the file's "
                             f"{'table' if isinstance(table[key], dict) else repr(table[key])}")
            else:
                lines.append(f"{section}.{key} = {shown} from the service "
                             "(the file leaves it to the default)")
    return lines


class RemoteConfig:
    """The applied version, the document waiting for a quiet moment, the last refusal. Reactor only."""

    def __init__(self, effective: Effective) -> None:
        self._file_doc = effective.file_doc
        self._file_config = effective.file_config
        self._current = effective.config
        self.applied: int | None = None if effective.document is None else effective.document.version
        self.refused: str | None = effective.problem
        self.pending: Checked | None = None
        self._path = document_path(effective.file_config)

    def offered(self, payload: bytes) -> None:
        """A document from the `config` topic (retained: it comes again on every connect)."""
        if not payload:
            return  # the service cleared it: nothing to apply (the kept one stays)
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._refuse(Refused(None, ConfigRefusal.MALFORMED, "not UTF-8"))
            return
        try:
            version: int | None = parse_config_document(text).version
        except MalformedCode:
            version = None
        held = {self.applied, None if self.pending is None else self.pending.document.version}
        if version is not None and version in held:
            return  # the retained copy of what the door holds: nothing to say
        result = check(text, self._file_doc, self._current, self.applied, self._file_config.source_path)
        if isinstance(result, Refused):
            self._refuse(result)
            return
        log.info("configuration v%d accepted; applied at the next quiet moment", result.document.version)
        self.pending = result
        self.refused = None

    def _refuse(self, refused: Refused) -> None:
        log.warning("configuration refused: %s", refused)
        self.refused = str(refused)

    def live(self) -> bool:
        """Whether the waiting document changes nothing but `[update]`: then it needs no restart
        (only the update watch and the quiet wait read those), and is applied at once."""
        assert self.pending is not None
        return replace(self.pending.config, update=self._current.update) == self._current

    def applied_live(self) -> Config:
        """The waiting document, kept and now the current one (`live()` said so); the new config."""
        assert self.pending is not None
        version = self.keep_pending()
        self._current, self.applied, self.pending = self.pending.config, version, None
        return self._current

    def keep_pending(self) -> int:
        """Write the waiting document where the next start reads it; the version. Raises OSError."""
        assert self.pending is not None
        write_atomic(self._path, self.pending.text + "\n", 0o640)
        return self.pending.document.version
