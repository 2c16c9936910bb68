"""The model registry: artifacts in BentoML's model store, history in the ledger.

A model's tag is ``fraud_detector:<first 16 hex digits of its artifact's sha256>``: the artifact
is content-addressed, so retraining on the same inputs (a byte-identical model file) finds the
model already registered and records "retrained: identical to ..." instead of a duplicate.

The artifact's sha256 covers every file of its store folder except BentoML's ``model.yaml``
(which holds a creation time); the ledger keeps it and each file's own hash. ``verify`` and
``load`` recompute them before anything evaluates, packages or serves a model and raise
``CorruptArtifactError`` naming the file that changed; ``load`` also checks that the metadata in
``model.yaml`` (threshold, feature names) still matches the ledger.

Exactly one champion: promoting a model retires the previous champion in the same transaction,
and a champion only loses that status by another model's promotion.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evergreen.models import ledger as ledger_db
from evergreen.models.bentoml_home import model_store, model_store_dir, using_bentoml_home
from evergreen.models.ledger import ModelEvent, ModelRecord, ModelStatus
from evergreen.models.training import TrainedModel, predict_fraud_proba
from evergreen.settings import EvergreenSettings

MODEL_NAME = "fraud_detector"
MODEL_FILE = "saved_model.cbm"  # bentoml.catboost's file name
BENTOML_DESCRIPTION = "model.yaml"  # rewritten by BentoML with a creation time: not hashed
_CHECKED_METADATA = ("threshold", "feature_names", "cat_features")

__all__ = [
    "CorruptArtifactError",
    "IllegalTransitionError",
    "LoadedModel",
    "ModelEvent",
    "ModelRecord",
    "ModelRegistry",
    "ModelStatus",
    "UnknownModelError",
]


class UnknownModelError(LookupError):
    """No model with that tag in the ledger."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0])


class CorruptArtifactError(RuntimeError):
    """A model's stored artifact differs from what the ledger recorded at registration."""


@dataclass
class LoadedModel:
    """A verified model, ready to score."""

    record: ModelRecord
    model: Any  # catboost.CatBoostClassifier
    feature_names: list[str]
    cat_features: list[str]
    threshold: float
    metadata: dict[str, Any]

    @property
    def tag(self) -> str:
        return self.record.tag

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Fraud probability of each row; ``df`` holds at least ``feature_names``."""
        return predict_fraud_proba(self.model, df, self.feature_names, self.cat_features)


def artifact_hashes(folder: Path) -> dict[str, str]:
    """sha256 of each file of an artifact folder (but BentoML's description), by relative path."""
    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative != BENTOML_DESCRIPTION:
            hashes[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def combined_sha256(hashes: dict[str, str]) -> str:
    """The artifact's sha256: one hash over its files' paths and hashes, in path order."""
    lines = "".join(f"{name}\t{digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def model_metadata(trained: TrainedModel) -> dict[str, Any]:
    """What the BentoML model's ``info.metadata`` carries (serving reads it)."""
    p = trained.provenance
    return {
        "feature_names": list(trained.feature_names),
        "cat_features": list(trained.cat_features),
        "threshold": float(trained.threshold),
        "threshold_rule": trained.threshold_rule,
        "feature_service": p.feature_service,
        "feature_service_version": p.feature_service_version,
        "training_window": p.training_window,
        "cutoff": p.cutoff,
        "data_fingerprint": p.data_fingerprint,
        "code_version": p.code_version,
        "seed": int(trained.seed),
        "params": dict(trained.params),
        "best_iteration": trained.best_iteration,
        "tree_count": trained.tree_count,
        "rows": dict(trained.rows),
        "positives": dict(trained.positives),
        "days": dict(trained.days),
        "training_seconds": trained.training_seconds,
        "library_versions": dict(trained.library_versions),
        "validation_metrics": dict(trained.validation_metrics),
        "input_hash": trained.input_hash,
        "adaptation": dict(trained.adaptation),
    }


class ModelRegistry:
    """Models of one Evergreen home: register, verify, load, and change their status."""

    def __init__(self, settings: EvergreenSettings):
        self.settings = settings

    # -- registration -------------------------------------------------------------------------

    def register(self, trained: TrainedModel, actor: str, reason: str) -> ModelRecord:
        """Store the artifact and record the model as a candidate; or, if an identical artifact
        is already registered, record the retraining on that model (status unchanged)."""
        _require_text(actor=actor, reason=reason)
        with tempfile.TemporaryDirectory(prefix="evergreen-model-") as tmp:
            hashes = artifact_hashes(trained.save(Path(tmp) / MODEL_FILE).parent)
        sha256 = combined_sha256(hashes)
        tag = f"{MODEL_NAME}:{sha256[:16]}"

        def record(conn) -> ModelRecord:
            existing = ledger_db.record_by_sha256(conn, sha256)
            if existing is not None:
                return self._record_retraining(conn, existing, trained, actor, reason)
            self._save_artifact(tag, trained, sha256)
            metadata = {**model_metadata(trained), "artifact_files": hashes}
            ledger_db.insert_model(
                conn,
                tag=tag,
                cutoff=trained.provenance.cutoff,
                training_window=trained.provenance.training_window,
                data_fingerprint=trained.provenance.data_fingerprint,
                sha256=sha256,
                metrics={"validation": dict(trained.validation_metrics)},
                metadata=metadata,
            )
            ledger_db.append_event(conn, tag, ModelStatus.CANDIDATE, actor, reason)
            return ledger_db.model_record(conn, tag)

        return ledger_db.write(self._ledger, record)

    def _ledger(self):
        return ledger_db.ledger(self.settings)

    def _record_retraining(
        self,
        conn: sqlite3.Connection,
        existing: ModelRecord,
        trained: TrainedModel,
        actor: str,
        reason: str,
    ) -> ModelRecord:
        note = f"retrained: identical to {existing.tag} (same sha256)"
        try:
            self._verify(existing)
        except CorruptArtifactError as error:  # the same bytes are at hand: put them back
            self._save_artifact(existing.tag, trained, existing.sha256)
            note += f"; artifact restored ({error})"
        _check_transition(existing, existing.status)  # a fact recorded, the status unchanged
        ledger_db.append_event(conn, existing.tag, existing.status, actor, f"{note}; {reason}")
        return replace(ledger_db.model_record(conn, existing.tag), retrained_identical=True)

    def _save_artifact(self, tag: str, trained: TrainedModel, sha256: str) -> None:
        import bentoml

        folder = self.artifact_path(tag)
        if folder.exists():  # left by an interrupted registration, or corrupt
            shutil.rmtree(folder)
        p = trained.provenance
        labels = {
            "cutoff": p.cutoff,
            "data_fingerprint": p.data_fingerprint,
            "feature_service_version": p.feature_service_version,
        }
        with using_bentoml_home(self.settings):
            bentoml.catboost.save_model(
                tag,
                trained.model,
                labels=labels,
                metadata=model_metadata(trained),
                signatures={"predict_proba": {"batchable": True, "batch_dim": 0}},
            )
        stored = combined_sha256(artifact_hashes(folder))
        if stored != sha256:
            raise CorruptArtifactError(
                f"{tag}: the stored artifact hashes to {stored}, the trained model to {sha256}"
            )

    # -- lookup -------------------------------------------------------------------------------

    def artifact_path(self, tag: str) -> Path:
        """The artifact's folder in BentoML's model store."""
        name, _, version = tag.partition(":")
        return model_store_dir(self.settings) / name / version

    def get(self, tag: str) -> ModelRecord:
        """The model's ledger record; ``UnknownModelError`` if there is none."""
        with ledger_db.ledger(self.settings) as conn:
            record = ledger_db.model_record(conn, tag)
        if record is None:
            raise self._unknown(tag)
        return record

    def _unknown(self, name: str) -> UnknownModelError:
        return UnknownModelError(
            f"no model {name!r} in the ledger {self.settings.ledger_path} "
            "(`evergreen models` lists them)"
        )

    def resolve(self, name: str) -> str:
        """The full tag for a tag, a version or a unique prefix of a version."""
        version = name.strip().removeprefix(f"{MODEL_NAME}:")
        tags = [r.tag for r in self.records() if r.tag.split(":", 1)[1].startswith(version)]
        if version and len(tags) == 1:
            return tags[0]
        if len(tags) > 1:
            raise UnknownModelError(f"{name!r} matches {len(tags)} models: {', '.join(tags)}")
        raise self._unknown(name)

    def champion(self) -> ModelRecord | None:
        """The model being served, if any."""
        with ledger_db.ledger(self.settings) as conn:
            champions = ledger_db.records_with_status(conn, ModelStatus.CHAMPION)
        return champions[0] if champions else None

    def records(self) -> list[ModelRecord]:
        """Every model with its current status, newest first."""
        with ledger_db.ledger(self.settings) as conn:
            return ledger_db.model_records(conn)

    def history(self, tag: str | None = None) -> list[ModelEvent]:
        """Status changes in order, of one model or all."""
        with ledger_db.ledger(self.settings) as conn:
            return ledger_db.events(conn, tag)

    # -- integrity ----------------------------------------------------------------------------

    def verify(self, tag: str) -> ModelRecord:
        """Check the artifact against the ledger's hashes; ``CorruptArtifactError`` if not."""
        record = self.get(tag)
        self._verify(record)
        return record

    def _verify(self, record: ModelRecord) -> None:
        folder = self.artifact_path(record.tag)
        if not folder.is_dir():
            raise CorruptArtifactError(f"the artifact of {record.tag} is missing: no {folder}")
        actual = artifact_hashes(folder)
        expected = record.metadata.get("artifact_files", {})
        for name in sorted(set(actual) | set(expected)):
            if actual.get(name) != expected.get(name):
                raise CorruptArtifactError(
                    f"the artifact of {record.tag} is corrupt: {folder / name} has sha256 "
                    f"{actual.get(name, '(missing file)')}, the ledger recorded "
                    f"{expected.get(name, '(no such file)')}; refusing to use it"
                )
        if combined_sha256(actual) != record.sha256:
            raise CorruptArtifactError(
                f"the artifact of {record.tag} is corrupt: {folder} hashes to "
                f"{combined_sha256(actual)}, the ledger recorded {record.sha256}"
            )

    def load(self, tag: str) -> LoadedModel:
        """The verified model, ready to score; ``CorruptArtifactError`` if it was altered."""
        import bentoml

        record = self.verify(tag)
        try:
            stored = model_store(self.settings).get(tag)
            metadata = dict(stored.info.metadata)
        except Exception as error:  # an unreadable model.yaml
            path = self.artifact_path(tag) / BENTOML_DESCRIPTION
            raise CorruptArtifactError(f"{path} is unreadable: {error}") from None
        for key in _CHECKED_METADATA:
            if metadata.get(key) != record.metadata.get(key):
                raise CorruptArtifactError(
                    f"the artifact of {tag} is corrupt: {key} in "
                    f"{self.artifact_path(tag) / BENTOML_DESCRIPTION} is {metadata.get(key)!r}, "
                    f"the ledger recorded {record.metadata.get(key)!r}"
                )
        return LoadedModel(
            record=record,
            model=bentoml.catboost.load_model(stored),
            feature_names=list(metadata["feature_names"]),
            cat_features=list(metadata["cat_features"]),
            threshold=float(metadata["threshold"]),
            metadata=metadata,
        )

    # -- status -------------------------------------------------------------------------------

    def set_status(
        self,
        tag: str,
        status: ModelStatus | str,
        actor: str,
        reason: str,
        demote_champion_to: ModelStatus = ModelStatus.RETIRED,
    ) -> ModelEvent:
        """The one place a model's status changes: checked against the lifecycle
        (``ledger.TRANSITIONS``), written to the ledger with actor and reason.

        Crowning a champion verifies its artifact and, in the same transaction, demotes the
        champion it replaces: retired, or rejected when the crowning is a rollback
        (``demote_champion_to=REJECTED``). A champion leaves no other way. An illegal change
        raises ``IllegalTransitionError`` (a ``ValueError``) saying what is allowed."""
        status = _status(status)
        demote_champion_to = _status(demote_champion_to)
        if demote_champion_to not in ledger_db.DEMOTIONS:
            raise ValueError(
                f"a replaced champion is retired or rejected, not {demote_champion_to.value}"
            )
        _require_text(actor=actor, reason=reason)

        def change(conn) -> ModelEvent:
            record = ledger_db.model_record(conn, tag)
            if record is None:
                raise self._unknown(tag)
            _check_transition(record, status)
            if status is ModelStatus.CHAMPION:
                self._verify(record)
                for previous in ledger_db.records_with_status(conn, ModelStatus.CHAMPION):
                    if previous.tag != tag:
                        why = f"replaced by {tag}: {reason}"
                        if demote_champion_to is ModelStatus.REJECTED:
                            why = reason
                        ledger_db.append_event(conn, previous.tag, demote_champion_to, actor, why)
            return ledger_db.append_event(conn, tag, status, actor, reason)

        return ledger_db.write(self._ledger, change)


class IllegalTransitionError(ValueError):
    """A status change the lifecycle does not allow."""


def _status(value: ModelStatus | str) -> ModelStatus:
    try:
        return ModelStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in ModelStatus)
        raise ValueError(f"unknown status {value!r}; use one of {allowed}") from None


def _check_transition(record: ModelRecord, status: ModelStatus) -> None:
    """Refuse, in words, a change ``ledger.TRANSITIONS`` does not list."""
    if status in ledger_db.TRANSITIONS[record.status]:
        return
    if record.status is ModelStatus.CHAMPION:
        raise IllegalTransitionError(
            f"{record.tag} is the champion: promote another model to replace it, "
            f"then it is retired (it cannot become {status.value} directly)"
        )
    allowed = ", ".join(sorted(s.value for s in ledger_db.TRANSITIONS[record.status]))
    raise IllegalTransitionError(
        f"{record.tag} is {record.status.value}: it cannot become {status.value} "
        f"(from {record.status.value}: {allowed})"
    )


def _require_text(**fields: str) -> None:
    for name, value in fields.items():
        if not value or not value.strip():
            raise ValueError(f"{name} is required and must not be blank")
