"""Prometheus's scrape targets, kept in step with what serves: file service discovery.

Every write of the supervisor's state (``state.mutate_state``) rewrites two files under
``<serving_dir>/scrape/`` when what they list changed: ``replicas.json`` (every replica of
every live revision, labelled with its revision, index, model version and bento) and
``routers.json`` (the edge's and the router's metrics addresses, labelled with their role).
Prometheus (``evergreen observe``) watches them (``file_sd_configs``) and picks a change up
within seconds, so a replica started, restarted on another port or stopped by a rollout is
scraped, or no longer scraped, without anyone editing Prometheus's configuration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evergreen.settings import EvergreenSettings

# The state is ``evergreen.rollout.state.ServingState``, which imports this module to write the
# files: typed as Any here, so the two modules do not import each other.
ServingState = Any

REPLICAS_FILE = "replicas.json"
ROUTERS_FILE = "routers.json"


def scrape_dir(settings: EvergreenSettings) -> Path:
    """Where the file service discovery's target files are."""
    return settings.serving_dir / "scrape"


def replica_targets(state: ServingState) -> list[dict]:
    """One target group per replica of a live revision (a replica still starting too: its
    ``up`` is 0 until it answers)."""
    groups = []
    for revision in state.live():
        for replica in revision.replicas:
            labels = {
                "revision": revision.name,
                "replica": str(replica.index),
                "model_version": revision.model_version,
                "bento": revision.spec.bento_tag or revision.spec.source,
                "stable": str(revision.name == state.stable).lower(),
            }
            groups.append({"targets": [replica.dial], "labels": labels})
    return groups


def router_targets(state: ServingState) -> list[dict]:
    """The edge's and the router's metrics addresses (those started with one)."""
    return [
        {"targets": [ref.metrics], "labels": {"role": ref.role}}
        for ref in (state.edge, state.router)
        if ref is not None and ref.metrics
    ]


def write_scrape_targets(settings: EvergreenSettings, state: ServingState) -> bool:
    """Rewrite the target files if what they list changed; True when one was rewritten."""
    folder = scrape_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    changed = False
    files = {REPLICAS_FILE: replica_targets(state), ROUTERS_FILE: router_targets(state)}
    for name, groups in files.items():
        path = folder / name
        text = json.dumps(groups, indent=1, sort_keys=True)
        if path.exists() and path.read_text() == text:
            continue
        # Renamed into place: Prometheus never reads half a file.
        partial = path.with_name(f".{name}.{os.getpid()}.tmp")
        partial.write_text(text)
        os.replace(partial, path)
        changed = True
    return changed
