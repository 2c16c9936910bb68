"""The demo's steps, one method each: simulate, history, first model, live days, labels, summary."""

from __future__ import annotations

from dagster import DagsterInstance

from evergreen.demo.driver import LoopDriver, RequestedRun
from evergreen.demo.world import SimulatedWorld
from evergreen.settings import EvergreenSettings


class DemoRun:
    """One demo: the simulated world, the headless daemon and what happened."""

    def __init__(self, settings: EvergreenSettings, plan, instance: DagsterInstance, console):
        from evergreen.demo.code_location import code_location
        from evergreen.demo.plan import DemoSummary, drift_day
        from evergreen.simulator import DriftScenario, SimulatorConfig

        self.settings, self.plan, self.console = settings, plan, console
        self.instance = instance
        self.drift_day = drift_day(settings, plan)
        days = plan.history_days + plan.live_days + settings.label_delay_days + 1
        config = SimulatorConfig(
            customers=plan.customers,
            terminals=plan.terminals,
            start=settings.start_date,
            days=days,
            seed=settings.seed,
            label_delay_days=settings.label_delay_days,
            fraud_burn_in_days=plan.fraud_burn_in_days,
            **DriftScenario(plan.scenario).fields(self.drift_day),
        )
        self.world = SimulatedWorld(settings, config)
        self.defs = defs = code_location()
        self.driver = LoopDriver(
            defs, instance, settings, job_run_config={"deploy": plan.deploy_config("canary")}
        )
        self.summary_data = DemoSummary()
        self.heartbeat = None

    # Steps.

    def simulate(self) -> None:
        total = len(range(self.world.config.days))
        with self._status(f"Simulating {total} days of {self.plan.customers:,} customers"):
            self.world.generate()

    def history(self) -> None:
        """Land the history; the landing sensor ingests it; features are backfilled."""
        from evergreen.demo.code_location import assets_named
        from evergreen.runs import materialize_partitions

        days = [self.world.day(i) for i in range(self.plan.history_days)]
        for day in days:
            self.world.release(day)
        with self._status(f"Landing sensor: ingesting {len(days)} days"):
            self._report("history", self.driver.tick())
        keys = [d.isoformat() for d in days]
        with self._status("Backfilling the feature tables"):
            features = assets_named("customer_spending_features", "terminal_risk_features")
            materialize_partitions(features, keys, self.settings, self.instance)
        with self._status("Feast apply, newest day online, the transactions' state"):
            definitions, online, state = assets_named(
                "feature_definitions", "online_features", "transaction_state"
            )
            materialize_partitions([definitions], [None], self.settings, self.instance)
            materialize_partitions([online], keys[-1:], self.settings, self.instance)
            materialize_partitions([state], keys, self.settings, self.instance)
        self.driver.settle()

    def first_model(self) -> None:
        """Train, gate, build and roll out the first champion (blue-green from nothing)."""
        cutoff = self.world.day(self.plan.history_days - 1).isoformat()
        with self._status(f"Training the first model (cut-off {cutoff})"):
            self._require(self.driver.run_job("retrain", cutoff, source="demo: first model"))
        config = self.plan.deploy_config("blue-green")
        with self._status("Building the bento, validating it and rolling it out"):
            self._require(self.driver.run_job("deploy", None, config, source="demo: first deploy"))
        from evergreen.models.registry import ModelRegistry
        from evergreen.rollout.load import LoadLoop
        from evergreen.rollout.supervisor import Supervisor

        self.summary_data.frozen_model = ModelRegistry(self.settings).champion().tag
        self.url = Supervisor(self.settings).serving_url()
        self.heartbeat = LoadLoop(self.url, rate=self.plan.heartbeat_rate, threads=1)
        self._heartbeat_at(self.world.day(self.plan.history_days))
        self.heartbeat.start()
        self.console.print(f"Serving {self.summary_data.frozen_model} at {self.url}")

    def live(self) -> None:
        """Each new day: its payments through the router, then its files land and the sensors
        and automation take it from there."""
        from evergreen.demo.traffic import DayReplay

        first = self.plan.history_days
        for i in range(first, first + self.plan.live_days):
            day = self.world.day(i)
            self._heartbeat_at(day)
            payments = self.world.transactions(day)
            replay = DayReplay(
                self.url, payments, self.plan.replay_rate, batch=self.plan.replay_batch
            )
            replay = replay.start().join()
            self.summary_data.requests += replay.sent
            self.summary_data.failed_requests += replay.failed
            self.summary_data.torn_retries += replay.torn_retries
            self.world.release(day)
            drift = " (drift)" if day >= self.drift_day else ""
            with self._status(f"{day}{drift}: {replay.sent} payments served; the day lands"):
                runs = [run for _ in range(self.plan.ticks_per_day) for run in self.driver.tick()]
            self._report(day.isoformat(), runs)

    def labels_mature(self) -> None:
        """The labels of the last live days land (no new payments), so every day is judged;
        ``model_monitoring`` then plots the whole live period on matured labels."""
        from evergreen.demo.code_location import assets_named
        from evergreen.runs import materialize_partitions

        first = self.plan.history_days + self.plan.live_days
        days = [self.world.day(i) for i in range(first, first + self.settings.label_delay_days)]
        for day in days:
            self.world.release(day, feeds=("labels",))
        with self._status(f"Labels of the last {len(days)} days mature"):
            keys = [d.isoformat() for d in days]
            (raw_labels,) = assets_named("raw_labels")
            materialize_partitions([raw_labels], keys, self.settings, self.instance)
        self._oracle()
        with self._status("Monitoring plots on the matured labels"):
            (monitoring,) = assets_named("model_monitoring")
            materialize_partitions([monitoring], [None], self.settings, self.instance)
        samples = self.heartbeat.stop() if self.heartbeat else []
        self.summary_data.requests += len(samples)
        self.summary_data.torn_retries += sum(s.torn_retries for s in samples)
        self.summary_data.failed_requests += [
            f"heartbeat: HTTP {s.status} {s.error}" for s in self.heartbeat.failed(samples)
        ]

    def summary(self):
        from evergreen.demo.report import collect, print_summary

        collect(self)
        print_summary(self.summary_data, self.console)
        plots = self.settings.reports_dir / "monitoring"
        self.console.print(
            f"Plots of live AP per model and drift per feature: {plots}/live_ap.png, "
            f"{plots}/drift_per_feature.png; AP per day served vs frozen vs oracle with the "
            f"loop's events: {plots}/recovery.png (the model_monitoring asset in the Dagster UI); "
            f"drift and quality per day in the Evidently UI workspace {self.settings.home}/"
            "evidently (`make ui` serves it)"
        )
        return self.summary_data

    # Helpers.

    def _oracle(self) -> None:
        """The oracle of each live day (retrained daily on all labels known), for the summary
        and the monitoring plot (``evergreen.loop.recovery``)."""
        from evergreen.loop.recovery import write_oracle_scores

        first = self.world.day(self.plan.history_days)
        last = self.world.day(self.plan.history_days + self.plan.live_days - 1)
        with self._status(f"Oracle: one model a day, {first}..{last}"):
            write_oracle_scores(self.settings, first, last)

    def _heartbeat_at(self, day) -> None:
        """The heartbeat's payments in the hour before ``day`` begins (data time, not the wall
        clock: the data's current time bounds a request's timestamp), on cards and terminals
        no simulated payment has, so real windows never count them."""
        import datetime as dt

        from evergreen.rollout.load import PROBE_ENTITY_BASE, synthetic_transactions

        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        self.heartbeat.payloads = synthetic_transactions(
            2000, self.settings.seed, at=start, entity_base=PROBE_ENTITY_BASE
        )

    def _report(self, label: str, runs: list[RequestedRun]) -> None:
        """One line a day: how many runs, and what the loop's sensors set off."""
        notable = [
            f"{r.source} -> {r.job or ', '.join(r.assets)}: {_outcome(r)}"
            for r in runs
            if r.source not in ("landing_zone_sensor", "automation")
        ]
        line = f"{label}: {len(runs)} runs" + (f"; {' | '.join(notable)}" if notable else "")
        self.summary_data.day_log.append(line)
        self.console.print(line, soft_wrap=True)

    def _require(self, run: RequestedRun) -> None:
        if not run.success:
            why = {**run.failed_steps, **run.failed_checks}
            reasons = "; ".join(f"{k}: {v.splitlines()[0] if v else ''}" for k, v in why.items())
            raise SystemExit(
                f"{run.source} failed (run {run.run_id}, in `evergreen ui`): {reasons or '?'}"
            )

    def _status(self, text: str):
        return self.console.status(f"[bold]{text}[/]…")


def _outcome(run: RequestedRun) -> str:
    """ok; the gate keeping the champion (a blocking check doing its job); or what failed."""
    if run.success:
        return "ok"
    gate = "promotion_decision.candidate_promoted"
    if set(run.failed_checks) == {gate}:
        return f"champion kept ({run.failed_checks[gate][:120]})"
    return "FAILED " + "; ".join(f"{k}: {v[:120]}" for k, v in run.failed_checks.items())
