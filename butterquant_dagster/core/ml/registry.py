"""The model registry: ONNX models with JSON metadata, versioned per name, with a champion.

Layout under ``root`` (``<data root>/models``)::

    <root>/<name>/v0001/model.onnx
    <root>/<name>/v0001/metadata.json
    <root>/<name>/v0002/...
    <root>/<name>/champion.json

A model is stored as ONNX bytes and plain JSON, never as pickle or joblib, so loading one
runs no code of ours or anybody else's: ``onnxruntime`` reads a graph of standard operators.

Every version directory appears complete or not at all: both files are written into a
hidden temporary directory next to the versions, flushed to disk, and the directory is
renamed to its version name in one step. Old versions are never touched, so the champion
can be rolled back. ``metadata.json`` holds the caller's metadata (training window,
metrics, feature columns, Dagster run id, ...) plus what the registry adds itself:
``name``, ``version``, ``sha256`` (of ``model.onnx``), ``registered_at`` (UTC ISO) and
``forced``. The hash is checked on every load and every promotion.

``champion.json`` names the current champion of a name and keeps, newest last, the
champions it replaced (``history``, what :meth:`ModelRegistry.rollback` and
:meth:`ModelRegistry.load_champion_with_fallback` walk back through) and an audit log of
promotions and rollbacks (``events``); both lists are capped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import onnxruntime as ort

from butterquant_dagster.core.ml import onnx_export

try:  # POSIX advisory locks; the registry still works (unlocked) where fcntl is missing.
    import fcntl
except ImportError:  # pragma: no cover - not on the Linux hosts this project runs on
    fcntl = None  # type: ignore[assignment]

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
CHAMPION_FILE = "champion.json"
HISTORY_LIMIT = 50
REQUIRED_METADATA = ("feature_columns", "label", "metrics")
RESERVED_METADATA = ("name", "version", "sha256", "registered_at", "forced")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^v([0-9]{4,9})$")
_TEMP_PREFIX = ".tmp-"
_LOCK_FILE = ".lock"
_PROVIDERS = ["CPUExecutionProvider"]


class RegistryError(ValueError):
    """A bad name, version or metadata, or a registry operation that cannot be done."""


class ModelLoadError(RegistryError):
    """A model that cannot be loaded: missing or corrupt files, or a hash mismatch."""


class NoChampionError(ModelLoadError):
    """``load(name)`` without a version for a name that has no champion."""


class PromotionError(RegistryError):
    """A promotion or rollback refused (forced model, altered file, nothing to roll back to)."""


class FeatureMismatchError(RegistryError):
    """The columns offered to a model differ from those it was trained on."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str],
        extra: list[str],
        reordered: list[str],
        duplicated: list[str],
    ):
        super().__init__(message)
        self.missing = missing
        self.extra = extra
        self.reordered = reordered
        self.duplicated = duplicated


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: where it lives and its metadata as stored on disk."""

    name: str
    version: str
    path: Path
    metadata: dict[str, Any]

    @property
    def number(self) -> int:
        return _version_number(self.version)

    @property
    def onnx_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def metadata_path(self) -> Path:
        return self.path / METADATA_FILE

    @property
    def sha256(self) -> str:
        return str(self.metadata["sha256"])

    @property
    def forced(self) -> bool:
        return self.metadata.get("forced") is True

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata["feature_columns"])


@dataclass(frozen=True)
class LoadedModel:
    """A verified model ready to run: an ``onnxruntime`` session on the CPU."""

    name: str
    version: str
    metadata: dict[str, Any]
    session: ort.InferenceSession
    path: Path

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata["feature_columns"])

    def check_features(self, columns: list[str]) -> None:
        """Raise FeatureMismatchError unless ``columns`` is exactly the training column list."""
        check_feature_columns(self.feature_columns, list(columns), f"{self.name} {self.version}")


def check_feature_columns(expected: list[str], columns: list[str], what: str = "model") -> None:
    """Compare offered columns with the training columns, naming every difference."""
    if columns == expected:
        return
    expected_set = set(expected)
    offered_set = set(columns)
    missing = [column for column in expected if column not in offered_set]
    extra = [column for column in dict.fromkeys(columns) if column not in expected_set]
    duplicated = [column for column in dict.fromkeys(columns) if columns.count(column) > 1]
    common_expected = [column for column in expected if column in offered_set]
    common_offered = [column for column in dict.fromkeys(columns) if column in expected_set]
    reordered = [
        offered
        for offered, wanted in zip(common_offered, common_expected, strict=True)
        if offered != wanted
    ]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"extra {extra}")
    if reordered:
        parts.append(f"reordered {reordered}")
    if duplicated:
        parts.append(f"duplicated {duplicated}")
    raise FeatureMismatchError(
        f"{what}: feature columns differ from training: {'; '.join(parts)} "
        f"(expected {expected}, got {columns})",
        missing=missing,
        extra=extra,
        reordered=reordered,
        duplicated=duplicated,
    )


def age_days(model: ModelVersion | LoadedModel, now: datetime) -> float:
    """Days from ``metadata["training_date"]`` to ``now`` (negative if it lies after ``now``).

    The training date may be an ISO date (taken as midnight UTC) or an ISO datetime; naive
    datetimes, here and for ``now``, are taken as UTC.
    """
    value = model.metadata.get("training_date")
    if value is None:
        raise RegistryError(f"{model.name} {model.version}: metadata has no training_date")
    trained = _parse_training_date(value, f"{model.name} {model.version}")
    return (_as_utc(now) - trained).total_seconds() / 86_400.0


class ModelRegistry:
    """Versioned ONNX models under ``root`` with a champion pointer per name."""

    age_days = staticmethod(age_days)

    def __init__(self, root: Path, *, clock: Callable[[], datetime] | None = None):
        self.root = Path(root)
        self._clock = clock or (lambda: datetime.now(UTC))

    # ---- paths and listing -------------------------------------------------------------

    def name_dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def version_dir(self, name: str, version: str) -> Path:
        return self.name_dir(name) / validate_version(version)

    def names(self) -> list[str]:
        """Names with at least one registered version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and _NAME.match(entry.name) and self._version_names(entry.name)
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """Every complete version of ``name``, oldest first."""
        return [self.get(name, version) for version in self._version_names(name)]

    def get(self, name: str, version: str) -> ModelVersion:
        path = self.version_dir(name, version)
        if not path.is_dir():
            raise RegistryError(f"model {name} has no version {version} (looked in {path})")
        return ModelVersion(name, version, path, _read_metadata(path, name, version))

    def _version_names(self, name: str) -> list[str]:
        directory = self.name_dir(name)
        if not directory.is_dir():
            return []
        found = [e.name for e in directory.iterdir() if e.is_dir() and _VERSION.match(e.name)]
        return sorted(found, key=_version_number)

    # ---- registering -------------------------------------------------------------------

    def register(
        self, name: str, onnx_bytes: bytes, metadata: dict[str, Any], *, forced: bool = False
    ) -> ModelVersion:
        """Store a new version of ``name`` and return it; never replaces an existing version."""
        validate_name(name)
        if not isinstance(onnx_bytes, bytes | bytearray) or not onnx_bytes:
            raise RegistryError(f"model {name}: onnx_bytes must be non-empty bytes")
        onnx_bytes = bytes(onnx_bytes)
        _validate_metadata(name, metadata)
        _check_onnx(name, onnx_bytes, list(metadata["feature_columns"]))
        record = dict(metadata)
        record.update(
            name=name,
            sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            registered_at=_as_utc(self._clock()).isoformat(),
            forced=bool(forced),
        )
        name_dir = self.name_dir(name)
        name_dir.mkdir(parents=True, exist_ok=True)
        with self._lock(name):
            temporary = name_dir / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
            try:
                temporary.mkdir()
                for _attempt in range(100):
                    existing = self._version_names(name)
                    number = _version_number(existing[-1]) + 1 if existing else 1
                    version = f"v{number:04d}"
                    record["version"] = version
                    text = json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n"
                    _write_bytes(temporary / MODEL_FILE, onnx_bytes)
                    _write_bytes(temporary / METADATA_FILE, text.encode("utf-8"))
                    _fsync_dir(temporary)
                    target = name_dir / version
                    if target.exists():  # another writer without the lock took the number
                        continue
                    try:
                        os.replace(temporary, target)
                    except OSError:
                        if target.exists():
                            continue
                        raise
                    _fsync_dir(name_dir)
                    return ModelVersion(name, version, target, json.loads(text))
                raise RegistryError(f"model {name}: could not allocate a new version")
            finally:
                shutil.rmtree(temporary, ignore_errors=True)

    # ---- champion ----------------------------------------------------------------------

    def champion_record(self, name: str) -> dict[str, Any] | None:
        """The parsed ``champion.json`` of ``name``, or None when it has no champion."""
        path = self.name_dir(name) / CHAMPION_FILE
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RegistryError(f"champion pointer {path} is unreadable: {error}") from error
        if not _valid_champion_record(record):
            raise RegistryError(f"champion pointer {path} is malformed")
        return record

    def champion(self, name: str) -> ModelVersion | None:
        record = self.champion_record(name)
        return None if record is None else self.get(name, record["version"])

    def promote(self, name: str, version: str, *, reason: str) -> ModelVersion:
        """Make ``version`` the champion of ``name``; promoting the champion again is a no-op.

        Refused for a forced model, for one whose metadata records failed promotion gates
        (``gates``, see core/ml/gates.py), and for a version whose ``model.onnx`` no longer
        matches the sha256 recorded at registration.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise PromotionError(f"promoting {name} {version}: a reason is required")
        with self._lock(name):
            target = self._promotable(name, version)
            current = self.champion_record(name)
            if current is not None and current["version"] == version:
                return target
            now = _as_utc(self._clock()).isoformat()
            history = list(current["history"]) if current else []
            events = list(current.get("events", [])) if current else []
            if current is not None:
                history.append(_entry(current))
            events.append(
                {
                    "action": "promote",
                    "version": version,
                    "from": current["version"] if current else None,
                    "reason": reason,
                    "at": now,
                }
            )
            self._write_champion(name, version, reason, now, history, events)
            return target

    def rollback(self, name: str, *, reason: str = "rollback") -> ModelVersion:
        """Re-point the champion of ``name`` to the champion it replaced."""
        with self._lock(name):
            current = self.champion_record(name)
            if current is None:
                raise PromotionError(f"cannot roll back {name}: it has no champion")
            history = list(current["history"])
            if not history:
                raise PromotionError(
                    f"cannot roll back {name}: champion {current['version']} has no predecessor"
                )
            previous = history.pop()
            target = self._promotable(name, previous["version"])
            now = _as_utc(self._clock()).isoformat()
            events = list(current.get("events", []))
            events.append(
                {
                    "action": "rollback",
                    "version": previous["version"],
                    "from": current["version"],
                    "reason": reason,
                    "at": now,
                }
            )
            why = f"rollback from {current['version']}: {reason}"
            self._write_champion(name, previous["version"], why, now, history, events)
            return target

    def _promotable(self, name: str, version: str) -> ModelVersion:
        try:
            candidate = self.get(name, version)
        except RegistryError as error:
            raise PromotionError(f"cannot promote {name} {version}: {error}") from error
        if candidate.metadata.get("forced") is not False:
            raise PromotionError(
                f"cannot promote {name} {version}: it was registered as a forced model"
            )
        verdict = candidate.metadata.get("gates")
        if isinstance(verdict, dict) and verdict.get("passed") is not True:
            raise PromotionError(
                f"cannot promote {name} {version}: it failed its promotion gates "
                f"({verdict.get('reason', 'no reason recorded')})"
            )
        try:
            actual = _sha256_file(candidate.onnx_path)
        except OSError as error:
            raise PromotionError(
                f"cannot promote {name} {version}: {candidate.onnx_path} is unreadable: {error}"
            ) from error
        if actual != candidate.metadata.get("sha256"):
            raise PromotionError(
                f"cannot promote {name} {version}: {candidate.onnx_path} does not match its "
                f"sha256 (expected {candidate.metadata.get('sha256')}, actual {actual})"
            )
        return candidate

    def _write_champion(
        self,
        name: str,
        version: str,
        reason: str,
        now: str,
        history: list[dict[str, Any]],
        events: list[dict[str, Any]],
    ) -> None:
        record = {
            "name": name,
            "version": version,
            "reason": reason,
            "promoted_at": now,
            "previous": history[-1]["version"] if history else None,
            "history": history[-HISTORY_LIMIT:],
            "events": events[-HISTORY_LIMIT:],
        }
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        _write_atomic(self.name_dir(name) / CHAMPION_FILE, text.encode("utf-8"))

    # ---- loading -----------------------------------------------------------------------

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Verify and open a version (the champion when ``version`` is None)."""
        if version is None:
            record = self.champion_record(name)
            if record is None:
                raise NoChampionError(f"model {name} has no champion")
            version = record["version"]
        path = self.version_dir(name, version)
        if not path.is_dir():
            raise ModelLoadError(f"model {name} {version}: {path} does not exist")
        metadata = _read_metadata(path, name, version)
        onnx_path = path / MODEL_FILE
        try:
            data = onnx_path.read_bytes()
        except OSError as error:
            raise ModelLoadError(
                f"model {name} {version}: cannot read {onnx_path}: {error}"
            ) from error
        actual = hashlib.sha256(data).hexdigest()
        if actual != metadata.get("sha256"):
            raise ModelLoadError(
                f"model {name} {version}: sha256 mismatch for {onnx_path}: "
                f"expected {metadata.get('sha256')}, actual {actual}"
            )
        try:
            session = _session(data)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelLoadError(
                f"model {name} {version}: {onnx_path} is not a loadable ONNX model: {error}"
            ) from error
        return LoadedModel(name, version, metadata, session, path)

    def load_champion_with_fallback(self, name: str) -> tuple[LoadedModel | None, list[str]]:
        """Load the champion, else the previous champions newest first, with warnings."""
        warnings: list[str] = []
        try:
            record = self.champion_record(name)
        except RegistryError as error:
            return None, [f"model {name}: {error}"]
        if record is None:
            return None, [f"model {name} has no champion"]
        candidates = [record["version"]]
        for entry in reversed(record["history"]):
            if entry["version"] not in candidates:
                candidates.append(entry["version"])
        failed: list[str] = []
        for position, version in enumerate(candidates):
            try:
                model = self.load(name, version)
            except ModelLoadError as error:
                role = "champion" if position == 0 else "previous champion"
                failed.append(f"{role} {version} failed to load: {_reason(error, name, version)}")
                continue
            if failed:
                warnings.append(f"model {name}: {'; '.join(failed)}; using {version}")
            return model, warnings
        warnings.append(f"model {name}: {'; '.join(failed)}; no model could be loaded")
        return None, warnings

    # ---- locking -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        directory = self.name_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        with open(directory / _LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ---- validation ------------------------------------------------------------------------


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RegistryError(
            f"invalid model name {name!r}: use 1-64 characters of [a-z0-9_-], "
            "starting with a letter or digit"
        )
    return name


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise RegistryError(f"invalid model version {version!r}: expected v0001, v0002, ...")
    return version


def _version_number(version: str) -> int:
    match = _VERSION.match(version)
    if match is None:
        raise RegistryError(f"invalid model version {version!r}")
    return int(match.group(1))


def _validate_metadata(name: str, metadata: dict[str, Any]) -> None:
    if not isinstance(metadata, dict):
        raise RegistryError(f"model {name}: metadata must be a dict, not {type(metadata).__name__}")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise RegistryError(f"model {name}: metadata lacks required keys {missing}")
    reserved = [key for key in RESERVED_METADATA if key in metadata]
    if reserved:
        raise RegistryError(f"model {name}: metadata keys {reserved} are set by the registry")
    columns = metadata["feature_columns"]
    if (
        not isinstance(columns, list)
        or not columns
        or not all(isinstance(column, str) and column for column in columns)
    ):
        raise RegistryError(
            f"model {name}: metadata['feature_columns'] must be a non-empty list of strings"
        )
    if len(set(columns)) != len(columns):
        raise RegistryError(f"model {name}: metadata['feature_columns'] has duplicates")
    if not isinstance(metadata["label"], str) or not metadata["label"]:
        raise RegistryError(f"model {name}: metadata['label'] must be a non-empty string")
    if not isinstance(metadata["metrics"], dict):
        raise RegistryError(f"model {name}: metadata['metrics'] must be a dict")
    _check_json(metadata, f"model {name}: metadata")
    if "training_date" in metadata:
        _parse_training_date(metadata["training_date"], f"model {name}")


def _check_json(value: Any, where: str) -> None:
    """Refuse anything that would not round-trip through strict JSON, naming where it is."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RegistryError(
                f"{where} is {value!r}, which is not valid JSON; store None for a missing value"
            )
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise RegistryError(
                    f"{where} has the non-string key {key!r}; JSON keys are strings"
                )
            _check_json(item, f"{where}[{key!r}]")
        return
    raise RegistryError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which is not "
        "JSON-serializable; convert it (float(), int(), str(), .isoformat(), list()) first"
    )


def _parse_training_date(value: Any, what: str) -> datetime:
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            return _as_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise RegistryError(f"{what}: training_date {value!r} is not an ISO date or datetime")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read_metadata(path: Path, name: str, version: str) -> dict[str, Any]:
    metadata_path = path / METADATA_FILE
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelLoadError(f"model {name} {version}: {metadata_path} is missing") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(
            f"model {name} {version}: {metadata_path} is corrupt: {error}"
        ) from error
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"model {name} {version}: {metadata_path} is not a JSON object")
    if metadata.get("name") != name or metadata.get("version") != version:
        raise ModelLoadError(
            f"model {name} {version}: {metadata_path} describes "
            f"{metadata.get('name')!r} {metadata.get('version')!r}"
        )
    sha = metadata.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ModelLoadError(f"model {name} {version}: {metadata_path} has no valid sha256")
    columns = metadata.get("feature_columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ModelLoadError(f"model {name} {version}: {metadata_path} has no feature_columns")
    return metadata


def _session(data: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(
        data, sess_options=onnx_export.session_options(), providers=_PROVIDERS
    )


def _check_onnx(name: str, data: bytes, feature_columns: list[str]) -> None:
    """Refuse bytes onnxruntime cannot open, and a single 2-D input of the wrong width."""
    try:
        session = _session(data)
    except Exception as error:  # onnxruntime raises its own exception types
        raise RegistryError(
            f"model {name}: onnx_bytes is not a loadable ONNX model: {error}"
        ) from error
    inputs = session.get_inputs()
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and isinstance(inputs[0].shape[1], int):
        width = inputs[0].shape[1]
        if width != len(feature_columns):
            raise RegistryError(
                f"model {name}: the ONNX input takes {width} features but metadata lists "
                f"{len(feature_columns)} feature_columns"
            )


def _valid_champion_record(record: Any) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("history"), list):
        return False
    entries = [record, *record["history"]]
    return all(
        isinstance(entry, dict)
        and isinstance(entry.get("version"), str)
        and _VERSION.match(entry["version"]) is not None
        for entry in entries
    )


def _reason(error: ModelLoadError, name: str, version: str) -> str:
    text = str(error)
    prefix = f"model {name} {version}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _entry(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": record["version"],
        "reason": record.get("reason"),
        "promoted_at": record.get("promoted_at"),
    }


# ---- files -----------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_atomic(target: Path, data: bytes) -> None:
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write_bytes(temporary, data)
        os.replace(temporary, target)
        _fsync_dir(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
