"""Reporting the mismatch benchmark: scores per recipe and device, tables, JSON, the bar chart, merging parts.

Scores: accuracy and macro-F1 per device, means over seen and unseen devices, the device gap (reference minus
the others' mean) and the gap closed, ``(recipe - baseline) / (ideal - baseline)`` on unseen devices; mean,
standard deviation and a 95 % t interval over seeds.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.stats

from micmatch.outputs import atomic_path
from micmatch.bench.data import MismatchConfig
from micmatch.bench.plan import DevicePlan, SimDevice
from micmatch.errors import CorpusError


@dataclass
class MismatchResult:
    """Per recipe, per seed, per device scores, with the plan and settings that produced them."""

    plan: DevicePlan
    config: MismatchConfig
    seeds: list[int]
    runs: dict[str, list[dict]]
    info: dict = field(default_factory=dict)
    #: Trained models of the run, kept out of the JSON (``"umc-converter"``: the converter recipe umc trained);
    #: :func:`write_results` saves them beside the tables.
    models: dict = field(default_factory=dict, compare=False, repr=False)

    def summary(self) -> dict:
        """Mean and standard deviation over seeds of every score (see :func:`summarize`)."""
        return summarize(self.runs, self.plan)

    def to_json(self) -> dict:
        return {"plan": self.plan.to_json(), "config": asdict(self.config), "seeds": self.seeds,
                "runs": self.runs, "summary": self.summary(), "info": self.info}


#: Best reference-device accuracy below which results.md says that the run undertrains: a classifier that has not
#: learnt the clean recordings measures its own training noise as much as the device mismatch.
UNDERTRAINED_BELOW = 0.90

#: Column definitions printed under the summary table of results.md.
COLUMNS = (
    "reference acc: accuracy on the test clips as the reference device recorded them (the clean ceiling)",
    "seen acc / unseen acc: mean accuracy over the devices that recorded part of the training set / none of it",
    "unseen macro-F1: mean over unseen devices of the F1 score averaged over classes",
    "device gap: reference accuracy minus the mean accuracy of the other devices (points; 0 = no mismatch)",
    "gap closed: (recipe - baseline) / (ideal - baseline) of the unseen accuracy; 0 % = no better than "
    "training on the reference alone, 100 % = as good as training on every device",
)


def _stats(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    # Sample standard deviation (ddof=1) over seeds; 0 for a single seed. ci95: half-width of the 95 % Student t
    # interval of the mean over seeds (None for one seed: no interval).
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    half = float(scipy.stats.t.ppf(0.975, v.size - 1) * std / np.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "std": std, "ci95": half}


def summarize(runs: dict[str, list[dict]], plan: DevicePlan) -> dict:
    """Scores per recipe: per device, mean over seen / unseen devices, device gap and gap closed.

    Every score is computed per seed first and then averaged (mean, sample std over seeds). ``gap_closed`` uses
    the ``baseline`` and ``ideal`` recipes of the same run (None when either is missing):
    ``(recipe - baseline) / (ideal - baseline)`` of the mean unseen-device accuracy.
    """
    from micmatch.metrics import device_gap, gap_closed

    ref = plan.reference.name
    seen = [d.name for d in plan.role("seen")]
    unseen = [d.name for d in plan.role("unseen")]
    out: dict = {}
    for name, per_seed in runs.items():
        rec: dict = {"devices": {}}
        for dev in plan.names:
            rec["devices"][dev] = {m: _stats([r[dev][m] for r in per_seed]) for m in ("accuracy", "macro_f1")}
        for group, names in (("seen", seen), ("unseen", unseen)):
            if names:
                for m in ("accuracy", "macro_f1"):
                    rec[f"{group}_{m}"] = _stats([np.mean([r[d][m] for d in names]) for r in per_seed])
        rec["reference_accuracy"] = rec["devices"][ref]["accuracy"]
        rec["device_gap"] = _stats([device_gap({d: r[d]["accuracy"] for d in plan.names}, ref) for r in per_seed])
        out[name] = rec
    if "baseline" in out and "ideal" in out and unseen:
        b = out["baseline"]["unseen_accuracy"]["mean"]
        i = out["ideal"]["unseen_accuracy"]["mean"]
        for name, rec in out.items():
            rec["gap_closed"] = gap_closed(rec["unseen_accuracy"]["mean"], b, i)
            # The interval: the spread over seeds of the gap closed by each seed (baseline and ideal of that seed).
            unseen_of = {k: [np.mean([r[d]["accuracy"] for d in unseen]) for r in runs[k]]
                         for k in (name, "baseline", "ideal")}
            per_seed = [gap_closed(*t) for t in zip(unseen_of[name], unseen_of["baseline"], unseen_of["ideal"])]
            per_seed = [g for g in per_seed if g is not None]
            rec["gap_closed_ci95"] = _stats(per_seed)["ci95"] if len(per_seed) == len(runs[name]) else None
    return out

def hardware(config: MismatchConfig) -> str:
    try:
        import torch

        from micmatch.learn.engine import select_device

        dev = select_device(config.device)
        gpu = f", {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else ""
        return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} on {dev.type}{gpu}"
    except ImportError:
        return f"{platform.machine()}, {os.cpu_count()} CPU cores"


def _pm(stat: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std [low, high]``: the interval is the 95 % t interval over seeds (absent for one seed)."""
    if stat is None:
        return "-"
    text = f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"
    if stat.get("ci95") is not None:
        low, high = (stat["mean"] - stat["ci95"]) * scale, (stat["mean"] + stat["ci95"]) * scale
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def _closed(rec: dict) -> str:
    closed = rec.get("gap_closed")
    if closed is None:
        return "-"
    half = rec.get("gap_closed_ci95")
    return f"{closed * 100:.0f}%" + ("" if half is None else f" [{(closed - half) * 100:.0f}, {(closed + half) * 100:.0f}]")


def undertrained_line(summary: dict) -> str | None:
    """The warning for results.md when even the best recipe's reference accuracy is below
    :data:`UNDERTRAINED_BELOW` (None otherwise)."""
    best = max((rec["reference_accuracy"]["mean"] for rec in summary.values()), default=None)
    if best is None or best >= UNDERTRAINED_BELOW:
        return None
    return (f"**Undertrained**: the best reference accuracy is {best * 100:.1f}%, below "
            f"{UNDERTRAINED_BELOW * 100:.0f}%: the classifier has not learnt the clean recordings, so differences "
            f"between recipes mix training noise with device mismatch (--quick runs undertrain by design); "
            f"train longer (--epochs) or on more clips before choosing a recipe.")


def to_markdown(result: MismatchResult) -> str:
    """Two tables: the summary per recipe and the accuracy per device (percent, mean ± std over seeds)."""
    s = result.summary()
    plan = result.plan
    lines = [
        "| recipe | reference acc | seen acc | unseen acc | unseen macro-F1 | device gap | gap closed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rec in s.items():
        lines.append(f"| {name} | {_pm(rec['reference_accuracy'])} | {_pm(rec.get('seen_accuracy'))} | "
                     f"{_pm(rec.get('unseen_accuracy'))} | {_pm(rec.get('unseen_macro_f1'))} | "
                     f"{_pm(rec['device_gap'])} | {_closed(rec)} |")
    warning = undertrained_line(s)
    lines += [""] + ([warning, ""] if warning else []) + ["Columns:", ""] + [f"- {c}" for c in COLUMNS]
    lines += ["", "Accuracy per device (%):", ""]
    roles = {d.name: d.role[0].upper() for d in plan.devices}
    lines.append("| recipe | " + " | ".join(f"{n} ({roles[n]})" for n in plan.names) + " |")
    lines.append("|---|" + "---|" * len(plan.names))
    for name, rec in s.items():
        lines.append(f"| {name} | " + " | ".join(_pm(rec["devices"][n]["accuracy"]) for n in plan.names) + " |")
    lines += ["", "Macro-F1 per device (%):", ""]
    lines.append("| recipe | " + " | ".join(plan.names) + " |")
    lines.append("|---|" + "---|" * len(plan.names))
    for name, rec in s.items():
        lines.append(f"| {name} | " + " | ".join(_pm(rec["devices"][n]["macro_f1"]) for n in plan.names) + " |")
    return "\n".join(lines) + "\n"


def write_results(result: MismatchResult, out_dir: str | os.PathLike, *, command: str | None = None,
                  chart: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and (``chart``) ``accuracy.png`` into ``out_dir`` atomically, and
    ``umc-converter.pt`` when recipe umc trained a converter (reusable as ``umc:PATH`` on the same devices)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    if command:
        doc["info"]["command"] = command
    paths = {"json": out / "results.json", "md": out / "results.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    plan = result.plan.to_json()
    head = [
        "# Device-mismatch benchmark",
        "",
        f"- reference: {plan['reference']}; seen: {', '.join(plan['seen']) or '-'}; "
        f"unseen: {', '.join(plan['unseen'])}",
        f"- augmentation IRs: {', '.join(plan['aug_irs']) or '-'}",
        f"- seeds: {result.seeds}; train clips: {result.info.get('n_train')}, test clips per device: "
        f"{result.info.get('n_test')}; sample rate {result.info.get('sample_rate')} Hz" + _feature_line(result.info),
        f"- hardware: {result.info.get('hardware')}; wall time {result.info.get('wall_s')} s",
    ]
    track = result.info.get("track") or {"name": result.config.track}
    head.append(f"- track: **{track['name']}**" + (f": {track['description']}" if track.get("description") else "")
                + (f"; umc: {track['umc']}" if track.get("umc") else ""))
    if command:
        head.append(f"- command: `{command}`")
    head += ["", "Percent, mean ± standard deviation over seeds, then the 95 % t interval of the mean over seeds "
             "in brackets (wide with few seeds: 2 seeds give about 9 standard deviations). gap closed = (recipe - "
             "baseline) / (ideal - baseline) of the mean unseen-device accuracy.", ""]
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(head) + to_markdown(result) + _time_table(result.info))
    if chart:
        from micmatch.plot import plot_mismatch_bars

        paths["png"] = plot_mismatch_bars(result.summary(), out / "accuracy.png")
    if result.models.get("umc-converter") is not None:
        paths["converter"] = result.models["umc-converter"].save(out / "umc-converter.pt")
    return paths


def _feature_line(info: dict) -> str:
    f = info.get("features")
    return "" if not f else f"; log-mel n_fft {f['n_fft']}, hop {f['hop_length']}, {f['n_mels']} mel bands"


def _time_table(info: dict) -> str:
    """Time per recipe with what dominates it (results of older runs have the totals only)."""
    totals, parts = info.get("recipe_wall_s") or {}, info.get("recipe_time") or {}
    if not totals:
        return ""
    lines = ["", "Time per recipe (s): fitting runs once (corrections, statistics, the converter of umc), training "
             "once per seed; recipes differ mostly by what runs per batch.", "",
             "| recipe | total | fitting | training per seed | most of the time |", "|---|---|---|---|---|"]
    for name, total in totals.items():
        p = parts.get(name, {})
        lines.append(f"| {name} | {total:.0f} | {p.get('fit_s', float('nan')):.0f} | "
                     f"{p.get('train_s_per_seed', float('nan')):.0f} | {p.get('dominant', '-')} |")
    return "\n".join(lines) + "\n"


def load_result(path: str | os.PathLike) -> MismatchResult:
    """Read a ``results.json`` written by :func:`write_results`."""
    doc = json.loads(Path(path).read_text())
    try:
        plan_doc, cfg = doc["plan"], dict(doc["config"])
        if cfg.get("band_hz") is not None:
            cfg["band_hz"] = tuple(cfg["band_hz"])
        devices = [SimDevice(plan_doc["reference"], "reference")]
        devices += [SimDevice(n, "seen") for n in plan_doc["seen"]]
        devices += [SimDevice(n, "unseen") for n in plan_doc["unseen"]]
        plan = DevicePlan(tuple(devices), tuple(Path(n) for n in plan_doc["aug_irs"]))
        return MismatchResult(plan, MismatchConfig(**cfg), list(doc["seeds"]), dict(doc["runs"]), dict(doc["info"]))
    except (KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: not a mismatch-benchmark results.json ({exc})") from None


def merge_results(results: Sequence[MismatchResult]) -> MismatchResult:
    """Join runs of the same benchmark (same devices, settings and seeds) made in several parts.

    A recipe present in two parts must have identical scores (the runs are deterministic); otherwise the parts
    did not come from the same setup and merging is refused.
    """
    first = results[0]
    runs = dict(first.runs)
    info = {**first.info, "parts_wall_s": [r.info.get("wall_s") for r in results]}
    info["wall_s"] = round(sum(r.info.get("wall_s", 0.0) for r in results), 1)
    for other in results[1:]:
        if other.plan.to_json() != first.plan.to_json() or other.config != first.config or other.seeds != first.seeds:
            raise CorpusError("results to merge differ in devices, settings or seeds; merge only parts of one run")
        for name, per_seed in other.runs.items():
            if name in runs and runs[name] != per_seed:
                raise CorpusError(f"recipe {name!r} scored differently in two parts; the runs are not the same setup")
            runs[name] = per_seed
        info["recipe_wall_s"] = {**info.get("recipe_wall_s", {}), **other.info.get("recipe_wall_s", {})}
        info["recipes"] = {**info.get("recipes", {}), **other.info.get("recipes", {})}
    return MismatchResult(first.plan, first.config, first.seeds, runs, info)


__all__ = ["COLUMNS", "MismatchResult", "UNDERTRAINED_BELOW", "hardware", "undertrained_line", "load_result", "merge_results", "summarize", "to_markdown", "write_results"]
