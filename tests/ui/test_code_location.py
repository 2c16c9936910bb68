"""The code location stays light: loading `definitions` imports none of the heavy ML libraries.

`dagster dev`, every run worker and every sensor tick import `definitions`; the heavy libraries
belong inside asset bodies, so the UI comes up in seconds. Load time itself is measured in
`bench/ui.py`, not asserted here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from evergreen.instance import INSTANCE_YAML

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("feast", "catboost", "evidently", "bentoml", "sklearn")

_PROBE = f"""
import json, sys
import definitions
heavy = {HEAVY!r}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({{"heavy": loaded, "assets": len(list(definitions.defs.assets or []))}}))
"""


def test_loading_definitions_imports_no_heavy_library(tmp_path):
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {**os.environ, "EVERGREEN_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["assets"] > 0
    assert report["heavy"] == [], (
        f"importing definitions loaded {report['heavy']}: move these imports into asset bodies"
    )
