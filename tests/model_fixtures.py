"""Model-layer fixtures (a pytest plugin, ``-p tests.model_fixtures``, so the model and loop
tests share one build): a real training set (simulator -> ingest -> features -> Feast), built
once per session, and models trained on it once.

The small zone runs 24 days, so the cut-off of day 23 has 17 days of labelled transactions
(default label delay 7): 6 training, 4 validation and 7 held-out evaluation days.
"""

import pytest

from evergreen.ingest.partition import ingest_partition
from evergreen.models.registry import ModelRegistry
from evergreen.models.training import Provenance, split_by_time, train_candidate
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings
from tests.conftest import day, make_settings, simulate_small
from tests.features.conftest import compute_features

ZONE_DAYS = 24
CUTOFF = day(ZONE_DAYS - 1)
FAST = {"iterations": 40}  # enough for distinct models where quality does not matter


def asset_settings(settings: EvergreenSettings) -> EvergreenSettings:
    """The settings the assets see for this home (the process defaults, this home)."""
    return EvergreenResource(home=str(settings.home)).settings()


@pytest.fixture(scope="session")
def pipeline_home(tmp_path_factory) -> EvergreenSettings:
    """24 simulated days ingested, both feature tables for every day, definitions applied."""
    from evergreen.features.feast_client import apply_definitions

    settings = make_settings(tmp_path_factory.mktemp("models") / "home")
    simulate_small(settings.landing_dir, days=ZONE_DAYS)
    for i in range(ZONE_DAYS):
        ingest_partition(settings, "transactions", day(i))
        ingest_partition(settings, "labels", day(i))
    compute_features(settings, range(ZONE_DAYS))
    apply_definitions(settings)
    return settings


@pytest.fixture(scope="session")
def training_frame(pipeline_home):
    """The training set of the cut-off, as the training_set asset builds it (not written)."""
    from evergreen.features.training_set import TrainingWindow, window_training_set

    s = asset_settings(pipeline_home)
    window = TrainingWindow.ending_at(CUTOFF, s.training_window_days, s.label_delay_days)
    return window_training_set(s, window)[1].to_pandas()


@pytest.fixture(scope="session")
def split(training_frame):
    return split_by_time(training_frame, evaluation_days=7, validation_days=4)


@pytest.fixture(scope="session")
def trained(split):
    """A candidate trained with the default parameters and seed 0."""
    model = train_candidate(split.train, split.validation, seed=0)
    model.provenance = Provenance(cutoff=CUTOFF.isoformat(), data_fingerprint="test-data")
    return model


@pytest.fixture(scope="session")
def retrained(split):
    """The same inputs trained again."""
    return train_candidate(split.train, split.validation, seed=0)


@pytest.fixture(scope="session")
def quick_models(split):
    """Three distinct small models (seeds 1, 2, 3)."""
    return [train_candidate(split.train, split.validation, seed=s, params=FAST) for s in (1, 2, 3)]


@pytest.fixture
def home(tmp_path) -> EvergreenSettings:
    """An empty Evergreen home of the test's own."""
    return make_settings(tmp_path / "home")


@pytest.fixture
def registry(home) -> ModelRegistry:
    return ModelRegistry(home)


@pytest.fixture
def registered(registry, quick_models) -> list[str]:
    """The three quick models registered as candidates; their tags."""
    return [registry.register(m, actor="test", reason="fixture").tag for m in quick_models]
