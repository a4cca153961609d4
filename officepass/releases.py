"""Door releases (contract §11), the service's side: build, sign, keep, serve.

`officepass release publish --version V` builds the door's two wheels (`doorctl`, `doorctl-wire`) from
a checkout with V as their version, fetches every wheel of the hashed lock of each target
(`requirements/door-{target}.txt`: bookworm on aarch64 and x86_64) with `pip download
--require-hashes --only-binary`, and signs a manifest (`OPU1:`, wire.codes) naming every file with its
SHA-256 and size. The files live in `[service] releases/{V}/`; `GET /releases/{V}/manifest` and
`/releases/{V}/files/{name}` serve them to doors (public: what protects a door is the signature it
checks, and the hashes pip checks again).

A rollout is a remote configuration: `update.release = V` for the chosen doors (console, or
`officepass door config --set update.release=V`), one door first, then the rest.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.keys import KeyRing
from officepass.models import ReleaseRecord
from wire.codes import ReleaseFile, ReleaseTarget, parse_release

log = logging.getLogger("officepass.releases")

TARGETS = ("bookworm-aarch64", "bookworm-x86_64")
# PEP 440, as the wheels' versions must be (a public version, optionally +local).
VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?"
                        r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?")
# pip's words for the Pi's and a PC's Debian bookworm (glibc 2.36), Python 3.11.
_PLATFORMS = {"aarch64": "aarch64", "x86_64": "x86_64"}
_MANYLINUX = ["manylinux2014_{arch}", *(f"manylinux_2_{n}_{{arch}}" for n in range(17, 37))]
_SOURCE_PARTS = ("pyproject.toml", "README.md", "controller", "drivers", "wire")
PIP_SECONDS = 1800


class ReleaseProblem(Exception):
    pass


@dataclass(frozen=True)
class Built:
    version: str
    manifest: str
    files: int
    bytes: int


def _run(args: list[str], what: str) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=PIP_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReleaseProblem(f"{what}: {exc}") from None
    if done.returncode != 0:
        raise ReleaseProblem(f"{what} failed: {(done.stderr or done.stdout).strip()[-800:]}")


def _versioned_copy(source: Path, version: str, into: Path) -> Path:
    tree = into / "src"
    tree.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in _SOURCE_PARTS:
        path = source / part
        if not path.exists():
            raise ReleaseProblem(f"{source} is not a doorctl checkout: no {part}")
        if path.is_dir():
            shutil.copytree(path, tree / part, ignore=ignore)
        else:
            shutil.copy2(path, tree / part)
    for pyproject in (tree / "pyproject.toml", tree / "wire" / "pyproject.toml"):
        text, n = re.subn(r'(?m)^version = "[^"]*"', f'version = "{version}"', pyproject.read_text(), count=1)
        if n != 1:
            raise ReleaseProblem(f"{pyproject}: no version line")
        pyproject.write_text(text)
    init = tree / "controller" / "__init__.py"
    text, n = re.subn(r'(?m)^__version__ = "[^"]*"', f'__version__ = "{version}"', init.read_text(), count=1)
    if n != 1:
        raise ReleaseProblem(f"{init}: no __version__ line")
    init.write_text(text)
    return tree


def _file(path: Path) -> ReleaseFile:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return ReleaseFile(path.name, digest.hexdigest(), path.stat().st_size)


def publish(db: Session, keys: KeyRing, source: Path, version: str, releases: Path,
            targets: tuple[str, ...] = TARGETS, *, by: str) -> Built:
    """Build, sign and keep release `version`; ReleaseProblem says why not (nothing is kept then)."""
    if not VERSION_RE.fullmatch(version) or len(version) > 64:
        raise ReleaseProblem(f"version {version!r} is not a PEP 440 version such as 0.2.0, 0.3.0rc1 or "
                             "0.2.1+hotfix (at most 64 characters)")
    if db.get(ReleaseRecord, version) is not None:
        raise ReleaseProblem(f"release {version} exists already: a version is published once")
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ReleaseProblem(f"unknown target {unknown[0]!r}: one of {', '.join(TARGETS)}")
    final = releases / version
    with tempfile.TemporaryDirectory(prefix="release-", dir=releases if releases.exists() else None) as tmp:
        work = Path(tmp)
        out = work / "files"
        out.mkdir()
        tree = _versioned_copy(source, version, work)
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
              str(tree / "wire"), str(tree)], "building the door's wheels")
        own = sorted(out.glob("*.whl"))
        if len(own) != 2:
            raise ReleaseProblem(f"expected the two door wheels, got {[p.name for p in own]}")
        manifest_targets: dict[str, ReleaseTarget] = {}
        for target in targets:
            lock = source / "requirements" / f"door-{target}.txt"
            if not lock.exists():
                raise ReleaseProblem(f"no lock {lock} for target {target}")
            arch = _PLATFORMS[target.split("-", 1)[1]]
            deps = work / target
            platforms = [arg for form in _MANYLINUX for arg in ("--platform", form.format(arch=arch))]
            _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                  "--require-hashes", "-r", str(lock), "-d", str(deps), "--python-version", "3.11",
                  "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
                  *platforms, "--platform", "any"], f"fetching the {target} wheels of {lock.name}")
            lock_name = f"door-{target}.txt"
            shutil.copy2(lock, out / lock_name)
            for wheel in deps.glob("*.whl"):
                if not (out / wheel.name).exists():
                    shutil.copy2(wheel, out / wheel.name)
            names = [lock_name, *(p.name for p in own), *sorted(p.name for p in deps.glob("*.whl"))]
            manifest_targets[target] = ReleaseTarget(lock_name, tuple(_file(out / n) for n in names))
        manifest = keys.release_manifest(version, manifest_targets)
        parse_release(manifest)  # what doors will parse
        (out / "manifest").write_text(manifest + "\n")
        releases.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(out), final)
    files = {f.name: f.size for t in manifest_targets.values() for f in t.files}
    db.add(ReleaseRecord(version=version, manifest=manifest, targets={"names": list(targets)},
                         published=datetime.now(UTC), published_by=by[:64]))
    db.flush()
    log.info("release %s published by %s: %d files, %d bytes", version, by, len(files), sum(files.values()))
    return Built(version, manifest, len(files), sum(files.values()))


def releases_list(db: Session) -> list[ReleaseRecord]:
    return list(db.execute(select(ReleaseRecord).order_by(ReleaseRecord.published.desc())).scalars())


def release_file(releases: Path, db: Session, version: str, name: str) -> Path | None:
    """A file of a published release, by the name its manifest gives it; None otherwise."""
    record = db.get(ReleaseRecord, version)
    if record is None:
        return None
    manifest = parse_release(record.manifest)
    if name != "manifest" and not any(f.name == name for t in manifest.targets.values() for f in t.files):
        return None
    path = releases / version / name
    return path if path.is_file() else None
