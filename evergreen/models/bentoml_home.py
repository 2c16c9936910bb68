"""BentoML's stores rooted at ``settings.bentoml_home``, chosen at run time.

BentoML reads ``BENTOML_HOME`` once and resolves its stores through a dependency-injection
container (``BentoMLContainer``). One process (a test session, the Dagster daemon) can work with
several Evergreen homes, so instead of the environment variable we hand BentoML a store object:
``model_store(settings)`` for the calls that accept ``_model_store=``, and
``using_bentoml_home(settings)`` to point the container itself (home, model store, bento store)
at a home for the duration of a block, e.g. around ``bentoml.catboost.save_model`` or a bento
build. Subprocesses (``bentoml serve``, ``bentoml build``) get ``bentoml_env(settings)``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from evergreen.settings import EvergreenSettings

if TYPE_CHECKING:
    from bentoml._internal.models import ModelStore

# No usage reports leave the machine; set before BentoML first reads it.
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

_CONTAINER_LOCK = threading.RLock()  # the container is process-global


def model_store_dir(settings: EvergreenSettings) -> Path:
    """Where BentoML keeps models: ``<bentoml_home>/models/<name>/<version>/``."""
    return settings.bentoml_home / "models"


def bento_store_dir(settings: EvergreenSettings) -> Path:
    """Where BentoML keeps built bentos."""
    return settings.bentoml_home / "bentos"


def model_store(settings: EvergreenSettings) -> ModelStore:
    """BentoML's model store under ``settings.bentoml_home`` (created if missing)."""
    from bentoml._internal.models import ModelStore

    path = model_store_dir(settings)
    path.mkdir(parents=True, exist_ok=True)
    return ModelStore(str(path))


def bentoml_env(settings: EvergreenSettings) -> dict[str, str]:
    """Environment variables that point a BentoML subprocess at this home."""
    return {"BENTOML_HOME": str(settings.bentoml_home), "BENTOML_DO_NOT_TRACK": "True"}


@contextmanager
def using_bentoml_home(settings: EvergreenSettings) -> Iterator[None]:
    """Point BentoML's container (home, model store, bento stores) at this home inside the
    block; restored afterwards. Blocks in different threads run one at a time."""
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer

    home = settings.bentoml_home
    for sub in ("models", "bentos", "envs", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    overrides = {
        BentoMLContainer.bentoml_home: str(home),
        BentoMLContainer.model_store_dir: str(home / "models"),
        BentoMLContainer.bento_store_dir: str(home / "bentos"),
        BentoMLContainer.tmp_bento_store_dir: str(home / "tmp"),
        BentoMLContainer.env_store_dir: str(home / "envs"),
        BentoMLContainer.model_store: model_store(settings),
        BentoMLContainer.bento_store: BentoStore(str(home / "bentos")),
        BentoMLContainer.tmp_bento_store: BentoStore(str(home / "tmp")),
    }
    with _CONTAINER_LOCK, ExitStack() as stack:
        for provider, value in overrides.items():
            stack.enter_context(provider.patch(value))
        yield
