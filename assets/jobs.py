"""The jobs the loop's sensors request: a retrain of one cut-off day, and a deploy.

Selections are by asset key, so this module imports no asset module: the jobs resolve against
whatever code location holds those assets (``definitions.py``), and the retrain job takes its
daily partitions from them.
"""

from dagster import AssetKey, AssetSelection, define_asset_job

from evergreen.settings import get_settings
from evergreen.workers import control_plane_executor

RETRAIN_JOB = "retrain"
DEPLOY_JOB = "deploy"

RETRAIN_ASSETS = ("training_set", "candidate_model", "evaluation_report", "promotion_decision")
DEPLOY_ASSETS = ("bento", "deployment")

retrain_job = define_asset_job(
    RETRAIN_JOB,
    selection=AssetSelection.assets(*(AssetKey(k) for k in RETRAIN_ASSETS)),
    description="Retrain on the cut-off day (the partition): training set, candidate, "
    "evaluation against the champion, and the gate's promotion decision.",
)

deploy_job = define_asset_job(
    DEPLOY_JOB,
    selection=AssetSelection.assets(*(AssetKey(k) for k in DEPLOY_ASSETS)),
    description="Build the champion's bento (infra-validated) and roll it out.",
    # The rollout's router and watchdog belong to the control plane: on the cluster profile
    # the steps run in the run's process there, not on a Celery worker host.
    executor_def=control_plane_executor(get_settings()),
)
