"""Regenerate the vendored schema of Dagster's Helm chart from the chart's own
``helm/dagster/values.schema.json`` (run by hand: ``python
evergreen/rollout/schemas/vendor_dagster.py VALUES_SCHEMA COMMIT``). Written:
``dagster-helm-values.schema.json``, the sections Evergreen's values set
(``evergreen.rollout.helm.SECTIONS``) and every definition they reach, with:

- titles and pydantic's "An enumeration." descriptions dropped (no meaning to a validator);
- the top-level ``required`` dropped: the chart's own ``values.yaml`` supplies the sections
  Evergreen leaves alone, and Helm validates the merged values; every ``required`` inside a
  section is kept, so Evergreen renders each section whole;
- run launchers cut to ``k8sRunLauncher`` and ``customRunLauncher`` (what Evergreen renders;
  the Celery-K8s launcher's config holds worker queues it does not use);
- the Kubernetes ``$ref``\\ s (``https://kubernetesjsonschema.dev/.../_definitions.json``) kept
  as they are: ``helm.validate_helm_values`` resolves them offline to the Kubernetes schemas
  ``kubernetes_validate`` ships.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "dagster-helm-values.schema.json"
SECTIONS = (
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "runLauncher",
    "dagsterDaemon",
    "telemetry",
    "additionalInstanceConfig",
)
SOURCE = "https://github.com/dagster-io/dagster/blob/{commit}/helm/dagster/values.schema.json"


def _plain(node: object) -> object:
    if isinstance(node, list):
        return [_plain(n) for n in node]
    if not isinstance(node, dict):
        return node
    drop = {"title"} | ({"description"} if node.get("description") == "An enumeration." else set())
    return {k: _plain(v) for k, v in node.items() if k not in drop}


def _local_refs(node: object) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_local_refs(n) for n in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["$ref"].split("/")[-1]} if node.get("$ref", "").startswith("#/") else set()
    return found.union(*(_local_refs(v) for v in node.values()))


def subset(full: dict) -> dict:
    """The sections Evergreen renders and the definitions they reach."""
    definitions = dict(full["definitions"])
    launchers = dict(definitions["RunLauncherConfig"])
    launchers["properties"] = {
        k: v for k, v in launchers["properties"].items() if k != "celeryK8sRunLauncher"
    }
    definitions["RunLauncherConfig"] = launchers
    properties = {k: full["properties"][k] for k in SECTIONS}
    wanted, todo = set(), _local_refs(properties)
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo |= _local_refs(definitions[name]) - wanted
    return {
        "type": "object",
        "properties": _plain(properties),
        "definitions": {k: _plain(definitions[k]) for k in sorted(wanted)},
    }


def main(values_schema: Path, commit: str) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Dagster Helm chart values (helm/dagster), the sections Evergreen renders",
        "description": f"Vendored from {SOURCE.format(commit=commit)} by vendor_dagster.py: "
        "titles dropped, top-level required dropped, run launchers cut to k8sRunLauncher.",
        **subset(json.loads(values_schema.read_text())),
    }
    OUT.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
