"""Reporting the mismatch benchmark: scores per recipe and device, tables, JSON, the bar chart, merging parts.

Scores: accuracy and macro-F1 per device, means over seen and unseen devices, the device gap (reference minus
the others' mean) and the gap closed, ``(recipe - baseline) / (ideal - baseline)`` on unseen devices; mean and
standard deviation over seeds.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

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


def _stats(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    # Sample standard deviation (ddof=1) over seeds; 0 for a single seed.
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0}


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
        for rec in out.values():
            rec["gap_closed"] = gap_closed(rec["unseen_accuracy"]["mean"], b, i)
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
    if stat is None:
        return "-"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def to_markdown(result: MismatchResult) -> str:
    """Two tables: the summary per recipe and the accuracy per device (percent, mean ± std over seeds)."""
    s = result.summary()
    plan = result.plan
    lines = [
        "| recipe | reference acc | seen acc | unseen acc | unseen macro-F1 | device gap | gap closed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rec in s.items():
        closed = rec.get("gap_closed")
        lines.append(f"| {name} | {_pm(rec['reference_accuracy'])} | {_pm(rec.get('seen_accuracy'))} | "
                     f"{_pm(rec.get('unseen_accuracy'))} | {_pm(rec.get('unseen_macro_f1'))} | "
                     f"{_pm(rec['device_gap'])} | {'-' if closed is None else f'{closed * 100:.0f}%'} |")
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
        f"{result.info.get('n_test')}; sample rate {result.info.get('sample_rate')} Hz",
        f"- hardware: {result.info.get('hardware')}; wall time {result.info.get('wall_s')} s",
    ]
    if command:
        head.append(f"- command: `{command}`")
    head += ["", "Percent, mean ± standard deviation over seeds. gap closed = (recipe - baseline) / "
             "(ideal - baseline) of the mean unseen-device accuracy.", ""]
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(head) + to_markdown(result))
    if chart:
        from micmatch.plot import plot_mismatch_bars

        paths["png"] = plot_mismatch_bars(result.summary(), out / "accuracy.png")
    if result.models.get("umc-converter") is not None:
        paths["converter"] = result.models["umc-converter"].save(out / "umc-converter.pt")
    return paths


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


__all__ = ["MismatchResult", "hardware", "load_result", "merge_results", "summarize", "to_markdown", "write_results"]
