"""A rollout told for a person: its timeline as a markdown table, its analyses as a table,
and a plot of the weights and error rates over time (PNG)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from evergreen.metadata import markdown_table
from evergreen.rollout.records import Rollout


def _clock(at: str) -> str:
    return at[11:23]


def timeline_markdown(rollout: Rollout) -> str:
    """One row per step: time, seconds since start, phase, weights, outcome, detail."""
    start = dt.datetime.fromisoformat(rollout.started_at)
    title = (
        f"**{rollout.kind}** `{rollout.revision}` ({rollout.model_version}) over "
        f"`{rollout.from_revision or '-'}` ({rollout.from_model_version or '-'}): "
        f"**{rollout.status}**"
    )
    rows = []
    for step in rollout.steps:
        offset = (dt.datetime.fromisoformat(step.at) - start).total_seconds()
        weights = ", ".join(f"{n} {w}%" for n, w in sorted(step.weights.items()))
        detail = step.detail.replace("|", "/")[:160]
        rows.append([_clock(step.at), f"{offset:.1f}", step.phase, weights, step.outcome, detail])
    columns = ["time (UTC)", "+s", "phase", "weights", "outcome", "detail"]
    return title + "\n\n" + markdown_table(columns, rows, align="lr")


def analyses_markdown(rollout: Rollout) -> str:
    """One row per analysis window: the canary's numbers and the verdict."""
    rows = []
    for step in rollout.steps:
        a = step.analysis
        if not a:
            continue
        c, b, s = a["canary"], a.get("baseline") or {}, a.get("scores") or {}
        verdict = "passed" if a["passed"] else "FAILED: " + "; ".join(a["reasons"])
        rows.append(
            [
                f"{step.weights.get(rollout.revision, 0)}%",
                f"{a['window_s']:.1f}",
                c["requests"],
                f"{c['error_rate']:.2%}",
                _num(c["p99_ms"]),
                _num(b.get("p99_ms")),
                _num(s.get("ks_statistic"), 3),
                _num(s.get("ks_pvalue"), 3, "g"),
                _num(s.get("psi"), 3),
                s.get("source", "-"),
                verdict,
            ]
        )
    if not rows:
        return "No analysis windows (no canary steps)."
    columns = ["weight", "window s", "requests", "error rate", "p99 ms", "baseline p99 ms"]
    columns += ["KS", "KS p", "PSI", "scores from", "verdict"]
    return markdown_table(columns, rows, align="rrrrrrrrr")


def _num(value, digits: int = 0, kind: str = "f") -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}{kind}}"


def plot_rollout(rollout: Rollout, path: Path) -> Path:
    """Weights of each revision (steps) and the analysed error rates over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = dt.datetime.fromisoformat(rollout.started_at)
    times = [(dt.datetime.fromisoformat(s.at) - start).total_seconds() for s in rollout.steps]
    revisions = sorted({n for s in rollout.steps for n in s.weights})
    fig, weights_axis = plt.subplots(figsize=(8, 4))
    for name in revisions:
        series = [s.weights.get(name, 0) for s in rollout.steps]
        weights_axis.step(times, series, where="post", label=f"{name} weight")
    weights_axis.set_xlabel("seconds since the rollout started")
    weights_axis.set_ylabel("weight (%)")
    weights_axis.set_ylim(-5, 105)
    errors_axis = weights_axis.twinx()
    analysed = [(t, s.analysis) for t, s in zip(times, rollout.steps, strict=True) if s.analysis]
    if analysed:
        errors_axis.plot(
            [t for t, _ in analysed],
            [a["canary"]["error_rate"] * 100 for _, a in analysed],
            "rx--",
            label="canary error rate",
        )
    errors_axis.set_ylabel("error rate (%)")
    errors_axis.set_ylim(bottom=0)
    handles = weights_axis.get_legend_handles_labels()
    extra = errors_axis.get_legend_handles_labels()
    weights_axis.legend(handles[0] + extra[0], handles[1] + extra[1], loc="center right")
    weights_axis.set_title(f"{rollout.kind} {rollout.revision}: {rollout.status}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
