"""A headless daemon tick: the code location's sensors and automation conditions, evaluated
in-process on a real instance, and the runs they request executed there, in order.

``dagster-daemon`` does the same with a process per run; the demo and the end-to-end tests use
this driver so a simulated day costs seconds, not a minute of process start-ups. The runs, the
sensor cursors' effects and the automation cursor land on the same instance the UI reads.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    Definitions,
    RunRequest,
    RunsFilter,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings


@dataclass
class RequestedRun:
    """One run a sensor or an automation condition asked for, and how it went."""

    source: str
    assets: list[str]
    partition: str | None
    success: bool
    run_id: str
    failed_checks: dict[str, str] = field(default_factory=dict)
    job: str = ""
    failed_steps: dict[str, str] = field(default_factory=dict)  # step -> its error's message


class LoopDriver:
    """Evaluates sensors and automation conditions and runs what they request."""

    def __init__(
        self,
        defs: Definitions,
        instance: DagsterInstance,
        settings: EvergreenSettings,
        sensors: list[str] | None = None,
        job_run_config: dict[str, dict] | None = None,
    ):
        self.defs = defs
        self.instance = instance
        self.resources = {"evergreen": EvergreenResource(home=str(settings.home))}
        self.sensor_cursors: dict[str, str | None] = {}
        self.automation_cursor = None
        # Run config per job name, as a deployment's launchpad config would set it.
        self.job_run_config = job_run_config or {}
        self.sensors = [
            s
            for s in defs.sensors or []
            if not isinstance(s, AutomationConditionSensorDefinition)
            and (sensors is None or s.name in sensors)
        ]
        self.assets = [a for a in defs.assets or [] if hasattr(a, "keys")]

    def settle(self) -> None:
        """Take the current state as automation's starting point (nothing is requested for
        what already happened, e.g. a backfill just done)."""
        result = evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.automation_cursor
        )
        self.automation_cursor = result.cursor

    def tick(self) -> list[RequestedRun]:
        """One pass: each sensor once, then automation until nothing more is requested."""
        runs = []
        for sensor in self.sensors:
            runs += self._evaluate_sensor(sensor)
        while True:
            requested = self._evaluate_automation()
            if not requested:
                return runs
            runs += requested

    def run_job(
        self, name: str, partition: str | None, run_config: dict | None = None, source: str = ""
    ) -> RequestedRun:
        """Run a job by hand (as a person would from the UI's launchpad)."""
        request = RunRequest(job_name=name, partition_key=partition, run_config=run_config or {})
        return self._run(source or f"manual: {name}", request)

    def _evaluate_sensor(self, sensor) -> list[RequestedRun]:
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.sensor_cursors.get(sensor.name),
            resources=self.resources,
            definitions=self.defs,
            sensor_name=sensor.name,
        )
        data = sensor.evaluate_tick(context)
        self.sensor_cursors[sensor.name] = data.cursor
        return [
            self._run(sensor.name, request)
            for request in data.run_requests or []
            if not self._already_ran(request)
        ]

    def _already_ran(self, request: RunRequest) -> bool:
        """The daemon's run-key rule: a request whose key already made a run is dropped."""
        if not request.run_key:
            return False
        runs = self.instance.get_runs(
            RunsFilter(tags={"dagster/run_key": request.run_key}), limit=1
        )
        return bool(runs)

    def _run(self, source: str, request: RunRequest) -> RequestedRun:
        tags = {"evergreen/trigger": source, **(request.tags or {}), "evergreen/sensor": source}
        if request.run_key:
            tags["dagster/run_key"] = request.run_key
        if not request.asset_selection:
            job = self.defs.resolve_job_def(request.job_name)
            result = job.execute_in_process(
                run_config=_quiet(request.run_config or self.job_run_config.get(request.job_name)),
                instance=self.instance,
                partition_key=request.partition_key,
                tags=tags,
                raise_on_error=False,
                resources=self.resources,
            )
            keys = [k.to_user_string() for k in job.asset_layer.executable_asset_keys]
        else:
            selection = list(request.asset_selection or [])
            result = self._materialize(selection, request.partition_key, tags)
            keys = [k.to_user_string() for k in selection]
        run = _requested_run(source, keys, request.partition_key, result)
        run.job = request.job_name if not request.asset_selection else ""
        return run

    def _materialize(self, keys: list[AssetKey], partition: str | None, tags: dict):
        return materialize(
            self.assets,
            selection=keys,
            partition_key=partition,
            instance=self.instance,
            resources=self.resources,
            tags=tags,
            raise_on_error=False,
            run_config=_quiet(None),
        )

    def _evaluate_automation(self) -> list[RequestedRun]:
        result = evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.automation_cursor
        )
        self.automation_cursor = result.cursor
        by_partition: dict[str | None, list[AssetKey]] = defaultdict(list)
        for asset in self.assets:
            for key in asset.keys:
                for partition in result.get_requested_partitions(key):
                    by_partition[partition].append(key)
        runs = []
        # Oldest partition first, as the daemon's backfill order would.
        for partition in sorted(by_partition, key=lambda p: p or ""):
            keys = by_partition[partition]
            tags = {"evergreen/trigger": "automation"}
            result = self._materialize(keys, partition, tags)
            runs.append(
                _requested_run("automation", [k.to_user_string() for k in keys], partition, result)
            )
        return runs


def _quiet(run_config: dict | None) -> dict:
    """The run's step logs stay in the instance (the UI shows them); the terminal gets warnings."""
    return {**(run_config or {}), "loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _requested_run(source: str, keys: list[str], partition: str | None, result) -> RequestedRun:
    failed = {
        f"{e.asset_key.to_user_string()}.{e.check_name}": e.description or ""
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    steps = {
        e.step_key or "run": _said(e.step_failure_data.error)
        for e in result.get_step_failure_events()
        if e.step_failure_data and e.step_failure_data.error
    }
    run = RequestedRun(source, keys, partition, result.success, result.run_id, failed)
    run.failed_steps = steps
    return run


def _said(error) -> str:
    """A step's error as a person reads it: a ``Failure`` raised on purpose is its message alone
    (its module path is noise), any other error keeps its class name."""
    message = error.message.strip()
    if error.cls_name == "Failure" and ": " in message:
        return message.split(": ", 1)[1]
    return message
