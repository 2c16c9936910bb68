"""What a revision serves: a built bento, a model's bento, or a service folder.

A revision is one deployable version: the ``bentoml serve`` target, its environment and the
model version its predictions carry. ``resolve_revision`` turns what a person names on the
command line (``evergreen deploy MODEL_OR_BENTO``) into a ``RevisionSpec``:

- a bento tag in the store (``fraud_detection:<version>``): served as built;
- a registered model tag (``fraud_detector:<version>``): its bento is built (or reused) first,
  after the registry verified the artifact's sha256;
- a folder holding ``service.py`` (a BentoML service, e.g. the tests' fixture): served from
  source, its class found in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evergreen.settings import EvergreenSettings


class UnknownRevisionError(LookupError):
    """What was named is neither a bento, nor a model, nor a service folder."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class RevisionSpec:
    """How to start one revision's replicas."""

    serve_target: str  # what `bentoml serve` is given: a bento tag or "module:Class"
    model_version: str  # the model_version its predictions carry
    source: str  # what the person named
    working_dir: str | None = None  # cwd of `bentoml serve` (None: the project root)
    env: dict[str, str] = field(default_factory=dict)
    replicas: int = 2
    bento_tag: str | None = None
    model_tag: str | None = None  # a registered model, if it is one

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict) -> RevisionSpec:
        return RevisionSpec(**data)

    def with_replicas(self, replicas: int) -> RevisionSpec:
        return RevisionSpec(**{**self.to_dict(), "replicas": replicas})


_SERVICE_CLASS = re.compile(r"@bentoml\.service\b[\s\S]*?\nclass\s+(\w+)")


def service_folder_spec(
    folder: Path, env: Mapping[str, str] | None = None, replicas: int = 2
) -> RevisionSpec:
    """A revision served from a folder's ``service.py`` (its ``@bentoml.service`` class)."""
    service = folder / "service.py"
    match = _SERVICE_CLASS.search(service.read_text())
    if match is None:
        raise UnknownRevisionError(f"{service} defines no @bentoml.service class")
    env = dict(env or {})
    version = env.get("FIXTURE_MODEL_VERSION") or env.get("EVERGREEN_MODEL_TAG") or folder.name
    return RevisionSpec(
        serve_target=f"service:{match.group(1)}",
        model_version=version,
        source=str(folder),
        working_dir=str(folder.resolve()),
        env=env,
        replicas=replicas,
    )


def resolve_revision(
    settings: EvergreenSettings,
    name: str,
    env: Mapping[str, str] | None = None,
    replicas: int = 2,
) -> RevisionSpec:
    """The revision ``name`` stands for (a service folder, a bento tag or a model tag)."""
    folder = Path(name)
    if folder.is_dir():
        return service_folder_spec(folder, env, replicas)
    from evergreen.models.bentoml_home import bento_store_dir

    bento_name, _, version = name.partition(":")
    if version and (bento_store_dir(settings) / bento_name / version / "bento.yaml").exists():
        return _bento_spec(settings, name, env, replicas)
    from evergreen.models.registry import ModelRegistry, UnknownModelError

    try:
        model_tag = ModelRegistry(settings).resolve(name)
    except UnknownModelError as error:
        raise UnknownRevisionError(
            f"{name!r} is not a built bento, a registered model or a folder with service.py "
            f"({error}; see `evergreen models`)"
        ) from None
    from evergreen.serving.bento import build_bento

    built = build_bento(settings, model_tag)
    return _bento_spec(settings, built.tag, env, replicas)


def _bento_spec(
    settings: EvergreenSettings, bento_tag: str, env: Mapping[str, str] | None, replicas: int
) -> RevisionSpec:
    import yaml

    from evergreen.models.bentoml_home import bento_store_dir

    bento_name, _, version = bento_tag.partition(":")
    info = yaml.safe_load(
        (bento_store_dir(settings) / bento_name / version / "bento.yaml").read_text()
    )
    model_tag = (info.get("labels") or {}).get("model_tag")
    return RevisionSpec(
        serve_target=bento_tag,
        model_version=model_tag or bento_tag,
        source=bento_tag,
        env=dict(env or {}),
        replicas=replicas,
        bento_tag=bento_tag,
        model_tag=model_tag,
    )
