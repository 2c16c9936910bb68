"""Where the Feast repo lives and the version of its definitions, without importing Feast.

The version is a hash of what ``feast apply`` acts on: the feature tables' columns and types, the
definitions module, the online store's layout, the repo's entry file and ``feature_store.yaml``. The
``feature_definitions`` asset uses it as its code version, and the FeatureService carries it as
a tag, so a model records exactly which definitions its features came from.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from evergreen.features.customer_spending import CUSTOMER_SPENDING
from evergreen.features.tables import FeatureTable
from evergreen.features.terminal_risk import TERMINAL_RISK

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FEATURE_REPO = PROJECT_ROOT / "feature_repo"
FEATURE_STORE_YAML = FEATURE_REPO / "feature_store.yaml"
FEATURE_TABLES: tuple[FeatureTable, ...] = (CUSTOMER_SPENDING, TERMINAL_RISK)
FEATURE_SERVICE = "fraud_detection"

_DEFINITION_FILES = (
    Path(__file__).with_name("feast_objects.py"),
    Path(__file__).with_name("sqlite_online_store.py"),  # its table layout is created by apply
    Path(__file__).with_name("realtime.py"),  # the request-time views' windows and features
    Path(__file__).with_name("realtime_state.py"),  # their state's layout, created by apply
    FEATURE_REPO / "evergreen_repo.py",
    FEATURE_STORE_YAML,
)


@lru_cache(maxsize=1)
def definitions_version() -> str:
    """A short hash of the Feast definitions; changes exactly when ``feast apply`` would."""
    digest = hashlib.sha256()
    for table in FEATURE_TABLES:
        digest.update(f"{table.name}:{table.entity}:{table.join_key}".encode())
        digest.update(repr(sorted((n, str(t)) for n, t in table.features.items())).encode())
    for path in _DEFINITION_FILES:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
