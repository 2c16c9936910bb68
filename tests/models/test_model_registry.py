"""The registry: artifacts in BentoML's store, the append-only ledger, one champion, integrity."""

import multiprocessing
import sqlite3

import numpy as np
import pytest
import yaml

from evergreen.models.bentoml_home import model_store, using_bentoml_home
from evergreen.models.ledger import connect_path
from evergreen.models.registry import (
    MODEL_FILE,
    CorruptArtifactError,
    ModelRegistry,
    ModelStatus,
    UnknownModelError,
    artifact_hashes,
    combined_sha256,
)
from tests.conftest import make_settings

CONTRACT_METADATA = {
    "feature_names",
    "cat_features",
    "threshold",
    "feature_service",
    "feature_service_version",
    "training_window",
    "data_fingerprint",
    "seed",
}


def test_a_registered_model_is_a_candidate_in_bentomls_store(registry, trained, split):
    record = registry.register(trained, actor="test", reason="first")

    assert record.status is ModelStatus.CANDIDATE and not record.retrained_identical
    folder = registry.artifact_path(record.tag)
    assert record.sha256 == combined_sha256(artifact_hashes(folder))
    assert record.tag == f"fraud_detector:{record.sha256[:16]}"
    stored = model_store(registry.settings).get(record.tag)
    assert set(stored.info.metadata) >= CONTRACT_METADATA
    assert stored.info.metadata["threshold"] == trained.threshold
    assert stored.info.labels["cutoff"] == trained.provenance.cutoff
    loaded = registry.load(record.tag)
    expected = trained.predict_proba(split.evaluation)
    assert np.array_equal(loaded.predict_proba(split.evaluation), expected)
    assert loaded.threshold == trained.threshold


def test_retraining_an_identical_model_adds_no_duplicate(registry, trained, retrained):
    first = registry.register(trained, actor="test", reason="first")
    again = registry.register(retrained, actor="dagster", reason="second run")

    assert again.tag == first.tag and again.retrained_identical
    assert [r.tag for r in registry.records()] == [first.tag]
    events = registry.history(first.tag)
    assert [e.status for e in events] == [ModelStatus.CANDIDATE, ModelStatus.CANDIDATE]
    assert events[1].reason.startswith(f"retrained: identical to {first.tag}")
    assert events[1].actor == "dagster"


def test_retraining_restores_a_corrupted_identical_artifact(registry, quick_models, split):
    tag = registry.register(quick_models[0], actor="test", reason="first").tag
    (registry.artifact_path(tag) / MODEL_FILE).write_bytes(b"garbage")

    again = registry.register(quick_models[0], actor="test", reason="second")

    assert again.tag == tag and "artifact restored" in registry.history(tag)[-1].reason
    scores = registry.load(tag).predict_proba(split.evaluation)
    assert np.array_equal(scores, quick_models[0].predict_proba(split.evaluation))


def test_the_ledger_persists_and_refuses_rewrites(home, registered):
    a, b, c = registered
    ModelRegistry(home).set_status(a, "challenger", actor="gate", reason="within noise")

    reopened = ModelRegistry(make_settings(home.home))
    assert {r.tag: r.status for r in reopened.records()} == {
        a: ModelStatus.CHALLENGER,
        b: ModelStatus.CANDIDATE,
        c: ModelStatus.CANDIDATE,
    }
    assert [(e.tag, e.actor, e.reason) for e in reopened.history(a)][-1] == (
        a,
        "gate",
        "within noise",
    )
    conn = connect_path(home.ledger_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE model_events SET status = 'champion'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM models")
    finally:
        conn.close()


def test_bad_status_changes_are_refused_in_words(registry, registered):
    a, _, _ = registered

    with pytest.raises(UnknownModelError, match="no model 'fraud_detector:nope'"):
        registry.set_status("fraud_detector:nope", "champion", actor="me", reason="why not")
    with pytest.raises(ValueError, match="unknown status 'king'"):
        registry.set_status(a, "king", actor="me", reason="why not")
    with pytest.raises(ValueError, match="reason is required"):
        registry.set_status(a, "rejected", actor="me", reason="  ")
    assert registry.history(a)[-1].status is ModelStatus.CANDIDATE


def _replay_champions(events) -> list[set[str]]:
    """The set of champions after each event."""
    status, champions = {}, []
    for e in events:
        status[e.tag] = e.status
        champions.append({t for t, s in status.items() if s is ModelStatus.CHAMPION})
    return champions


def test_promoting_retires_the_champion_so_there_is_exactly_one(registry, registered):
    a, b, c = registered

    registry.set_status(a, "champion", actor="gate", reason="first model passes the floors")
    registry.set_status(b, "champion", actor="gate", reason="better")

    assert registry.champion().tag == b
    assert registry.get(a).status is ModelStatus.RETIRED
    assert registry.history(a)[-1].reason == f"replaced by {b}: better"
    with pytest.raises(ValueError, match="is the champion: promote another model"):
        registry.set_status(b, "rejected", actor="me", reason="changed my mind")
    registry.set_status(a, "champion", actor="me", reason="roll back")
    assert [r.tag for r in registry.records() if r.status is ModelStatus.CHAMPION] == [a]
    assert all(len(champions) <= 1 for champions in _replay_champions(registry.history()))


def _promote_repeatedly(settings, tag: str, times: int) -> None:
    registry = ModelRegistry(settings)
    for i in range(times):
        registry.set_status(tag, "champion", actor=f"proc-{tag[-4:]}", reason=f"round {i}")


def test_concurrent_promotions_from_several_processes_keep_one_champion(home, registered):
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_promote_repeatedly, args=(home, tag, 8)) for tag in registered
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [w.exitcode for w in workers] == [0, 0, 0]
    events = ModelRegistry(home).history()
    assert sum(e.status is ModelStatus.CHAMPION for e in events) == 24
    champions = _replay_champions(events)
    assert all(len(c) <= 1 for c in champions) and len(champions[-1]) == 1


def test_a_corrupted_artifact_is_refused(registry, registered):
    a, b, _ = registered
    model_file = registry.artifact_path(a) / MODEL_FILE
    expected = registry.get(a).metadata["artifact_files"][MODEL_FILE]
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))

    with pytest.raises(CorruptArtifactError) as refused:
        registry.load(a)
    message = str(refused.value)
    assert str(model_file) in message and expected in message
    assert artifact_hashes(model_file.parent)[MODEL_FILE] in message
    with pytest.raises(CorruptArtifactError):
        registry.set_status(a, "champion", actor="me", reason="try anyway")
    assert registry.champion() is None


def test_edited_model_metadata_or_a_missing_artifact_is_refused(registry, registered):
    a, b, _ = registered
    description = registry.artifact_path(a) / "model.yaml"
    info = yaml.safe_load(description.read_text())
    info["metadata"]["threshold"] = 0.99
    description.write_text(yaml.safe_dump(info))

    with pytest.raises(CorruptArtifactError, match="threshold .* is 0.99, the ledger recorded"):
        registry.load(a)
    registry.artifact_path(b).joinpath(MODEL_FILE).unlink()
    with pytest.raises(CorruptArtifactError, match="missing file"):
        registry.verify(b)


def test_each_home_has_its_own_bentoml_store(tmp_path, quick_models):
    import bentoml

    first, second = make_settings(tmp_path / "one"), make_settings(tmp_path / "two")
    tag_one = ModelRegistry(first).register(quick_models[0], actor="t", reason="r").tag
    tag_two = ModelRegistry(second).register(quick_models[1], actor="t", reason="r").tag

    with using_bentoml_home(first):
        assert [str(m.tag) for m in bentoml.models.list()] == [tag_one]
    with using_bentoml_home(second):
        assert [str(m.tag) for m in bentoml.models.list()] == [tag_two]
    assert [str(m.tag) for m in model_store(second).list()] == [tag_two]


def test_models_resolve_by_version_prefix(registry, registered):
    a, _, _ = registered
    version = a.split(":")[1]

    assert registry.resolve(version[:8]) == registry.resolve(a) == a
    with pytest.raises(UnknownModelError, match="no model 'zzz'"):
        registry.resolve("zzz")
