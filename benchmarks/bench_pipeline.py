"""The mismatch benchmark's training pipeline before and after it moved to torch: epoch time and accuracy.

*Before* (numpy per batch): waveform augmentations and the log-mel front end recomputed in numpy for the whole
training set every epoch, and every batch augmentation converting the batch to numpy and back. It is the
benchmark's code at the git revision ``--old-ref`` (default: the last revision with the numpy pipeline), loaded into a
temporary module, so the package keeps no second code path. *After* (torch): the same recipes on tensors on one
device, batched (:mod:`micmatch.bench.pipeline`).

1. **Epoch time**, side by side in one run on the same data: per recipe, each pipeline trains 1 and
   ``1 + k`` epochs; an epoch's time is the difference divided by ``k`` (so data loading, feature setup and
   scoring cancel out). The two pipelines alternate, ``--repeats`` times; the medians are compared.
2. **Accuracy** for the same seeds on a reduced CPU configuration: both pipelines run the benchmark and the
   mean unseen-device accuracies are compared with the seed noise as tolerance (stated in the results file).

Usage: PYTHONPATH=src python benchmarks/bench_pipeline.py [--data DIR] [--irs DIR] [--threads 2]
Writes benchmarks/results/pipeline.md and pipeline.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402

from micmatch.bench import run as new  # noqa: E402
from micmatch.bench.data import MismatchConfig, prepare_data  # noqa: E402
from micmatch.bench.plan import plan_devices  # noqa: E402
from micmatch.bench.recipes import parse_recipe  # noqa: E402
from micmatch.corpus import load_corpus  # noqa: E402
from micmatch.simulate import list_irs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TIME_RECIPES = ["baseline", "mixup", "filteraugment", "freq-mixstyle", "synth-fr-aug", "dir-aug"]
ACC_RECIPES = ["baseline", "mixup", "synth-fr-aug"]
SEEN, UNSEEN = ["GEC_bigdynamic"], ["IR_Lomo52A5M", "Reslo_VMC2"]
#: The last revision whose benchmark converted every batch to numpy and back.
OLD_REF = "0bdcecb825083d863751c1b9999f16af72886fdc"


def load_old(ref: str):
    """The benchmark module (and its training loop) as they were at git revision ``ref``."""

    def source(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], check=True, capture_output=True,
                              text=True).stdout

    def module(name: str, text: str):
        spec = importlib.util.spec_from_loader(name, loader=None)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        exec(compile(text, f"<{ref}:{name}>", "exec"), mod.__dict__)
        return mod

    module("_old_micmatch_train", source("src/micmatch/learn/train.py"))
    text = source("src/micmatch/bench/mismatch.py").replace("micmatch.learn.train import", "_old_micmatch_train import")
    return module("_old_micmatch_mismatch", text)


class Pipeline:
    """One implementation behind a common face: prepare the data once, prepare a recipe, train and score."""

    def __init__(self, name: str, prepare_data, prepare, run_recipe, recipe_of):
        self.name, self._prepare_data, self._prepare, self._run, self._recipe = (name, prepare_data, prepare,
                                                                                 run_recipe, recipe_of)

    def data(self, corpus, plan, config):
        return self._prepare_data(corpus, plan, config)

    def train(self, data, recipe: str, seed: int, epochs: int, prepared):
        data.config = replace(data.config, epochs=epochs)
        return self._run(data, self._recipe(recipe), seed, prepared=prepared)

    def prepared(self, data, recipe: str):
        return self._prepare(data, self._recipe(recipe))


def pipelines(old_ref: str) -> list[Pipeline]:
    old = load_old(old_ref)
    return [Pipeline("numpy per batch (before)", old.prepare_data, old._prepare, old.run_recipe, old.parse_recipe),
            Pipeline("torch (now)", prepare_data, new.prepare, new.run_recipe, parse_recipe)]


def epoch_times(pipes, corpus, plan, config, *, k: int, repeats: int) -> dict:
    out = {}
    datas = [p.data(corpus, plan, config) for p in pipes]
    for recipe in TIME_RECIPES:
        preps = [p.prepared(d, recipe) for p, d in zip(pipes, datas)]
        for p, d, prep in zip(pipes, datas, preps):  # warm-up: first-call costs stay out of the figures
            p.train(d, recipe, 0, 1, prep)
        wall = {p.name: [] for p in pipes}
        cpu = {p.name: [] for p in pipes}
        for _ in range(repeats):
            for p, d, prep in zip(pipes, datas, preps):
                t0, c0 = time.perf_counter(), time.process_time()
                p.train(d, recipe, 0, 1, prep)
                t1, c1 = time.perf_counter(), time.process_time()
                p.train(d, recipe, 0, 1 + k, prep)
                t2, c2 = time.perf_counter(), time.process_time()
                wall[p.name].append(((t2 - t1) - (t1 - t0)) / k)
                cpu[p.name].append(((c2 - c1) - (c1 - c0)) / k)
        med_wall = {n: statistics.median(v) for n, v in wall.items()}
        med_cpu = {n: statistics.median(v) for n, v in cpu.items()}
        (bw, nw), (bc, nc) = ([m[p.name] for p in pipes] for m in (med_wall, med_cpu))
        out[recipe] = {"epoch_wall_s": med_wall, "epoch_cpu_s": med_cpu, "all_wall_s": wall, "all_cpu_s": cpu,
                       "speedup_wall": bw / nw, "speedup_cpu": bc / nc}
        print(f"{recipe}: wall {bw:.2f} -> {nw:.2f} s ({bw / nw:.2f}x), CPU {bc:.2f} -> {nc:.2f} s "
              f"({bc / nc:.2f}x) per epoch", file=sys.stderr)
    return out


def accuracies(pipes, corpus, plan, config, seeds, *, save=None) -> dict:
    """Mean unseen-device accuracy per recipe and pipeline; ``save(partial)`` is called after each recipe."""
    out = {}
    datas = [p.data(corpus, plan, config) for p in pipes]
    unseen = [d.name for d in plan.role("unseen")]
    n_test = datas[0].test_waves.shape[0] * len(unseen)
    for recipe in ACC_RECIPES:
        rec = {}
        for p, d in zip(pipes, datas):
            prep = p.prepared(d, recipe)
            accs = [float(np.mean([r[u]["accuracy"] for u in unseen]))
                    for r in (p.train(d, recipe, s, config.epochs, prep) for s in seeds)]
            rec[p.name] = {"per_seed": accs, "mean": float(np.mean(accs)),
                           "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0}
        a, b = (rec[p.name] for p in pipes)
        diff = b["mean"] - a["mean"]
        # Tolerance: two standard errors of the difference of the two means, from the seed spread, and at least
        # two binomial standard errors of accuracies measured on n_test clips per seed.
        seed_se = math.sqrt((a["std"] ** 2 + b["std"] ** 2) / len(seeds))
        p_mean = (a["mean"] + b["mean"]) / 2
        binom_se = math.sqrt(2 * p_mean * (1 - p_mean) / (n_test * len(seeds)))
        tol = 2 * max(seed_se, binom_se)
        rec.update(difference=diff, tolerance=tol, within=abs(diff) <= tol)
        out[recipe] = rec
        print(f"{recipe}: {a['mean']:.3f} vs {b['mean']:.3f} (tolerance {tol:.3f})", file=sys.stderr)
        if save is not None:
            save(out)
    return out


def markdown(res: dict, args) -> str:
    names = res["pipelines"]
    lines = [
        "# Training pipeline: numpy per batch (before) vs torch (now)",
        "",
        f"Machine: {res['hardware']}; torch limited to {args.threads} threads. The machine may have been shared with "
        "other jobs while this ran, so absolute times are noisy: compare the ratios, measured side by side in one run "
        "(the two pipelines alternate). No GPU was available for this run, so there is no GPU figure.",
        "",
        f"Data: FSDD ({args.time_max_train} training clips for the epoch times, {res['n_train']} training and "
        f"{args.max_test} test clips for the accuracies, 1 s at 8 kHz), reference = "
        f"original recordings, seen {', '.join(SEEN)}, unseen {', '.join(UNSEEN)}; the quick configuration "
        f"reduced further (log-mel {args.n_mels} bands, n_fft 256, hop 128, batch 64). Old code: git revision "
        f"`{res['old_ref']}`.",
        "",
        f"## Epoch time (s; median of {args.repeats}, epoch = (time of 1 + {args.k} epochs - time of 1) / {args.k})",
        "",
        "CPU time is the process's own CPU seconds (both threads); wall time is listed too. Neither is clean on "
        "a shared machine (threads waiting for a core also burn CPU time). baseline is the control: both "
        "pipelines do the same work per epoch there (fixed features, no augmentation), so its ratio shows how "
        "far noise alone moves a ratio in this run.",
        "",
        f"| recipe | CPU: {names[0]} | CPU: {names[1]} | CPU speed-up | wall: {names[0]} | wall: {names[1]} | "
        "wall speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for recipe, r in res["epoch_time"].items():
        c, w = r["epoch_cpu_s"], r["epoch_wall_s"]
        lines.append(f"| {recipe} | {c[names[0]]:.2f} | {c[names[1]]:.2f} | {r['speedup_cpu']:.2f}x | "
                     f"{w[names[0]]:.2f} | {w[names[1]]:.2f} | {r['speedup_wall']:.2f}x |")
    if res.get("accuracy"):
        lines += [
            "",
            f"## Mean unseen-device accuracy (%), seeds {res['seeds']}, {args.epochs} epochs",
            "",
            "Tolerance: two standard errors of the difference of the two means, from the spread over seeds, and "
            "never less than two binomial standard errors of an accuracy measured on the test clips (seed noise). "
            "The two pipelines draw their augmentations differently (numpy per epoch vs torch per batch) and "
            "compute features in different precision, so equality is not expected, only agreement within noise.",
            "",
            f"| recipe | {names[0]} | {names[1]} | difference | tolerance | within |",
            "|---|---|---|---|---|---|",
        ]
        for recipe, r in res["accuracy"].items():
            a, b = r[names[0]], r[names[1]]
            lines.append(f"| {recipe} | {100 * a['mean']:.1f} ± {100 * a['std']:.1f} | {100 * b['mean']:.1f} ± "
                         f"{100 * b['std']:.1f} | {100 * r['difference']:+.1f} | {100 * r['tolerance']:.1f} | "
                         f"{'yes' if r['within'] else 'NO'} |")
    lines += ["", f"Epoch times: `{res['timing_command']}`", "",
              f"Accuracies: `{res.get('accuracy_command', res['command'])}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA / "fsdd")
    ap.add_argument("--irs", type=Path, default=DATA / "micirp" / "ir")
    ap.add_argument("--old-ref", default=OLD_REF, help="git revision of the numpy pipeline [%(default)s]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-train", type=int, default=300, help="training clips of the accuracy comparison")
    ap.add_argument("--time-max-train", type=int, default=128, help="training clips of the epoch timing")
    ap.add_argument("--max-test", type=int, default=100)
    ap.add_argument("--n-mels", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--k", type=int, default=2, help="extra epochs of the epoch-time difference")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-accuracy", action="store_true",
                    help="keep the accuracies of the existing results/pipeline.json (with their command)")
    ap.add_argument("--skip-timing", action="store_true",
                    help="keep the epoch times of the existing results/pipeline.json (with their command)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    ref = args.old_ref
    config = MismatchConfig.quick(max_train=args.max_train, max_test=args.max_test, n_mels=args.n_mels,
                                  epochs=args.epochs, device="cpu", progress=False)
    corpus = load_corpus(args.data, seed=config.data_seed)
    plan = plan_devices(list_irs(args.irs), seen=SEEN, unseen=UNSEEN, aug_from_rest=True)
    pipes = pipelines(ref)
    from micmatch.bench.report import hardware

    timing = replace(config, max_train=args.time_max_train)
    res = {"pipelines": [p.name for p in pipes], "old_ref": ref, "hardware": hardware(config),
           "threads": args.threads, "n_train": args.max_train, "command": "python " + " ".join(sys.argv)}
    earlier = json.loads((RESULTS / "pipeline.json").read_text()) if (RESULTS / "pipeline.json").exists() else {}
    if args.skip_accuracy and "accuracy" in earlier:
        res.update(accuracy=earlier["accuracy"], seeds=earlier["seeds"], n_train=earlier["n_train"],
                   accuracy_command=earlier.get("accuracy_command", earlier["command"]))
    if args.skip_timing:
        res.update(epoch_time=earlier["epoch_time"], timing_command=earlier.get("timing_command", earlier["command"]))
    else:
        res.update(epoch_time=epoch_times(pipes, corpus, plan, timing, k=args.k, repeats=args.repeats),
                   timing_command=res["command"])
    print(write_results("pipeline", res, markdown(res, args)))  # the timings, in case the rest is cut short
    if not args.skip_accuracy:
        res["seeds"] = list(range(args.seeds))
        res["accuracy_command"] = res["command"]

        def save(partial: dict) -> None:
            write_results("pipeline", {**res, "accuracy": partial}, markdown({**res, "accuracy": partial}, args))

        res["accuracy"] = accuracies(pipes, corpus, plan, config, res["seeds"], save=save)
        print(write_results("pipeline", res, markdown(res, args)))


if __name__ == "__main__":
    main()
