"""The training code's version, without importing the training code (the code location
loads this; pandas and CatBoost stay out of it)."""

import hashlib
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def training_code_version() -> str:
    """A short hash of the code that turns a training set into a model (the training module,
    the feature list); the ``candidate_model`` asset's code version."""
    digest = hashlib.sha256()
    for module in ("features.py", "training.py"):
        digest.update(Path(__file__).with_name(module).read_bytes())
    return digest.hexdigest()[:12]
