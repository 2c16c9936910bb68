"""Regenerate the vendored Argo Rollouts schemas from the CRDs of an argo-rollouts checkout
(run by hand: ``python evergreen/rollout/schemas/vendor_argo.py CRDS_DIR``, where CRDS_DIR is
its ``manifests/crds``). The CRDs' ``openAPIV3Schema`` become JSON Schema: descriptions
dropped, ``x-kubernetes-int-or-string`` as integer-or-string, and every object with listed
properties closed (``additionalProperties: false``), so a misspelt field fails as Kubernetes'
strict validation would. Written:

- ``argo-analysistemplate-v1alpha1.schema.json``: the AnalysisTemplate, its metric providers
  cut to ``prometheus`` (what Evergreen renders; the others hold whole pod specs);
- the canary's background ``analysis`` block into ``argo-rollout-v1alpha1.schema.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
TEMPLATE_OUT = HERE / "argo-analysistemplate-v1alpha1.schema.json"
ROLLOUT_SUBSET = HERE / "argo-rollout-v1alpha1.schema.json"


def json_schema(node: object) -> object:
    """An openAPIV3Schema node as closed JSON Schema."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k != "description"}
    if node.get("x-kubernetes-int-or-string"):
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    elif (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return {k: v for k, v in out.items() if not k.startswith("x-kubernetes")}


def crd_schema(path: Path) -> dict:
    crd = yaml.safe_load(path.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def main(crds: Path) -> None:
    template = crd_schema(crds / "analysis-template-crd.yaml")
    metric = template["properties"]["spec"]["properties"]["metrics"]["items"]
    providers = metric["properties"]["provider"]["properties"]
    metric["properties"]["provider"]["properties"] = {"prometheus": providers["prometheus"]}
    template["properties"]["spec"]["properties"].pop("templates", None)  # nothing renders them
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Argo Rollouts AnalysisTemplate (argoproj.io/v1alpha1), Prometheus provider",
        "description": "Vendored from the argo-rollouts CRD (manifests/crds/"
        "analysis-template-crd.yaml) by vendor_argo.py: providers cut to prometheus.",
        **json_schema(template),
    }
    schema["properties"]["apiVersion"] = {"const": "argoproj.io/v1alpha1"}
    schema["properties"]["kind"] = {"const": "AnalysisTemplate"}
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    TEMPLATE_OUT.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")

    rollout = crd_schema(crds / "rollout-crd.yaml")
    canary = rollout["properties"]["spec"]["properties"]["strategy"]["properties"]["canary"]
    subset = json.loads(ROLLOUT_SUBSET.read_text())
    subset["$defs"]["canary"]["properties"]["analysis"] = json_schema(
        canary["properties"]["analysis"]
    )
    ROLLOUT_SUBSET.write_text(json.dumps(subset, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
