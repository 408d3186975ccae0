"""Conversion quality measured directly: converted against real recordings of each known device.

The adaptation track of the device-mismatch benchmark (``micmatch bench mismatch --track adapt``) on FSDD and
MicIRP: data seed ``--data-seed`` draws 6 unseen devices (each an IR plus a phone/laptop recording chain) and 2
seen ones; every unseen device records ``--adapt-clips`` unlabeled clips of the training split. The device
converter is trained exactly as recipe ``umc`` trains it there (:func:`micmatch.bench.umc.fit_data`, the
registry entry ``umc`` with ``known=True``): on the reference's training clips (at most ``--ref-clips``) and the
known devices' adaptation clips, conditioned on micmatch's estimate of each device (band shift and noise floor,
:mod:`micmatch.device_estimate`), once per form (stochastic, offset, pure).

Then, for the held-out test clips (never seen by any converter), the reference's recordings are converted to each
unseen device and compared with the device's real recordings of the same clips by
:func:`micmatch.conversion_quality.quantile_distance` (per-band quantiles 5-95 % of log-mel frame levels, mean
absolute difference in dB). Rows beside the converter forms: ``bare offset`` (the estimated band shift added,
nothing else), ``known-aug`` (the recipe's augmentation towards the device: shift plus a textured floor) and
``unconverted`` (the reference's recordings as they are). Target: the converter's distance at most half the bare
offset's.

    PYTHONPATH=src nice -n 19 .venv/bin/python benchmarks/bench_converter_quality.py [--epochs 6]
Writes ``benchmarks/results/conversion_quality.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_results  # noqa: E402

FORMS = ("stochastic", "offset", "pure")
#: Bins this far above the device's floor (after the bare offset) count as content, not pause.
SPEECH_MARGIN_DB = 10.0


def _data(root: Path, args):
    from micmatch.bench.data import MismatchConfig, prepare_data
    from micmatch.bench.plan import plan_devices
    from micmatch.corpus import load_corpus
    from micmatch.simulate import list_irs

    cfg = MismatchConfig(track="adapt", adapt_clips=args.adapt_clips, data_seed=args.data_seed, device="cpu",
                         progress=False, max_test=args.test_clips)
    corpus = load_corpus(root / "fsdd", seed=cfg.data_seed)
    plan = plan_devices(list_irs(root / "micirp" / "ir"), n_seen=cfg.n_seen, n_unseen=cfg.n_unseen,
                        seed=cfg.data_seed, aug_from_rest=True)
    return prepare_data(corpus, plan, cfg)


def _train(data, form: str, args):
    from micmatch.bench.umc import fit_data
    from micmatch.converter_entry import fit_converter

    waves, labels = [], []
    for i, rows in fit_data(data, False):
        w = rows() if callable(rows) else data.train_set(False)[rows]
        waves.append(w)
        labels += [data.plan.names[i]] * len(w)
    return fit_converter(np.concatenate(waves), [], config=data.config.logmel(data.sample_rate), preset=args.preset,
                         epochs=args.epochs, n_clips=args.ref_clips, n_devices=0, norm=None, seed=args.seed,
                         compute="cpu", progress=False, form=form, discriminator=args.discriminator, known=True,
                         devices=labels, reference=data.plan.reference.name, n_fft=data.config.sc_n_fft)


def _known_aug(x: np.ndarray, est: dict, seed: int) -> np.ndarray:
    import torch

    from micmatch.bench.known import KnownDeviceAugment

    aug = KnownDeviceAugment({"d": est}, p=1.0)
    xt = torch.as_tensor(x, dtype=torch.float32)
    return aug.apply_params(xt, aug.draw(len(x), generator=np.random.default_rng(seed))).numpy()


def _plot(path: Path, clip: int, devices: list[str], ref_feat, real, converted, cfg) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from micmatch.outputs import atomic_path

    cols = ["real recording", "converter (stochastic)", "converter (pure)", "known-aug", "bare offset"]
    fig, axes = plt.subplots(len(devices), len(cols) + 1, figsize=(2.3 * (len(cols) + 1), 2.0 * len(devices)),
                             sharex=True, sharey=True, squeeze=False)
    vmin, vmax = -110.0, float(np.max(ref_feat[clip])) + 10
    for r, dev in enumerate(devices):
        panels = [ref_feat[clip], real[dev][clip], converted["stochastic"][dev][clip], converted["pure"][dev][clip],
                  converted["known-aug"][dev][clip], converted["bare offset"][dev][clip]]
        for c, (panel, title) in enumerate(zip(panels, ["reference (source)", *cols])):
            ax = axes[r, c]
            ax.imshow(panel, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{dev}\nmel band", fontsize=7)
    fig.suptitle(f"One held-out clip converted to three known devices (log-mel dB, {cfg.n_mels} bands; "
                 "silent frames included)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as stage:
        fig.savefig(stage, format="png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("MICMATCH_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
    p.add_argument("--data", type=Path, default=Path(default_data),
                   help="folder with fsdd/ and micirp/ [$MICMATCH_DATA, else ../shared/data beside the repository]")
    p.add_argument("--data-seed", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="seed of the converter's training and noise")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--preset", default="cpu-short")
    p.add_argument("--discriminator", default=None, choices=["per-device", "conditional"])
    p.add_argument("--ref-clips", type=int, default=400)
    p.add_argument("--adapt-clips", type=int, default=200)
    p.add_argument("--test-clips", type=int, default=300)
    p.add_argument("--forms", default=",".join(FORMS))
    p.add_argument("--name", default="conversion_quality")
    args = p.parse_args(argv)
    if not (args.data / "fsdd").is_dir() or not (args.data / "micirp" / "ir").is_dir():
        print(f"bench_converter_quality: {args.data}: fsdd/ and micirp/ir/ not found; pass --data", file=sys.stderr)
        return 2
    from micmatch.bench.known import estimate_known_devices
    from micmatch.conversion_quality import quantile_distance
    from micmatch.logmel import log_mel

    t0 = time.perf_counter()
    data = _data(args.data, args)
    cfg = data.config.logmel(data.sample_rate)
    names = data.plan.names
    ref = names.index(data.plan.reference.name)
    unseen = [d.name for d in data.plan.role("unseen")]
    est = estimate_known_devices(data, reference=True)
    ref_feat = log_mel(data.test_set(ref), data.sample_rate, config=cfg).astype(np.float32)
    real = {d: log_mel(data.test_set(names.index(d)), data.sample_rate, config=cfg).astype(np.float32)
            for d in unseen}
    prep_s = time.perf_counter() - t0
    converted: dict[str, dict[str, np.ndarray]] = {
        "unconverted": {d: ref_feat for d in unseen},
        "bare offset": {d: ref_feat + est[d]["shift_db"][:, None].astype(np.float32) for d in unseen},
        "known-aug": {d: _known_aug(ref_feat, est[d], args.seed) for d in unseen}}
    train_s = {}
    ref_name = data.plan.reference.name
    for form in [f for f in args.forms.split(",") if f]:
        t = time.perf_counter()
        model = _train(data, form, args)
        train_s[form] = round(time.perf_counter() - t, 1)
        floors = model.floors
        converted[form] = {d: model.convert(ref_feat, est[d]["shift_db"] - est[ref_name]["shift_db"],
                                            floors.get(d) if model.config.floor_path else None, seed=args.seed)
                           for d in unseen}
        print(f"{form}: trained in {train_s[form]:.0f} s", flush=True)
    dist = {k: {d: quantile_distance(v[d], real[d]) for d in unseen} for k, v in converted.items()}
    mean = {k: float(np.mean(list(v.values()))) for k, v in dist.items()}
    # Content kept: where the shifted input stands 10 dB above the device's floor (speech, not pauses), how far
    # each method moves it from the bare offset (a converter that keeps the speech changes little there).
    change = {}
    for k, v in converted.items():
        per = []
        for d in unseen:
            shifted = converted["bare offset"][d]
            loud = shifted > est[d]["floor_db"][None, :, None] + SPEECH_MARGIN_DB
            per.append(float(np.mean(np.abs(v[d] - shifted)[loud])) if loud.any() else float("nan"))
        change[k] = float(np.nanmean(per))
    offset = mean["bare offset"]
    best = min((f for f in train_s), key=lambda f: mean[f], default=None)
    met = best is not None and mean[best] <= 0.5 * offset
    wall = round(time.perf_counter() - t0, 1)
    order = [k for k in (*FORMS, "known-aug", "bare offset", "unconverted") if k in dist]
    lines = [f"# Conversion quality on held-out clips (data seed {args.data_seed}, adapt track)", "",
             "Distance between converted and real recordings of each unseen device: per-band quantiles 5-95 % of "
             "log-mel frame levels, mean absolute difference (dB; lower is better). Converters trained as recipe "
             f"umc trains them in `--track adapt`: preset {args.preset}, {args.epochs} epochs, at most "
             f"{args.ref_clips} reference clips + {args.adapt_clips} adaptation clips per device, discriminator "
             f"{args.discriminator or 'per-device'}, seed {args.seed}; {len(ref_feat)} held-out test clips.", "",
             "`speech change`: mean |method - bare offset| (dB) over the bins where the bare offset stands "
             f"{SPEECH_MARGIN_DB:.0f} dB above the device's estimated floor (the content, not the pauses): how much "
             "a method rewrites the speech itself.", "",
             "| method | mean | speech change | " + " | ".join(unseen) + " |", "|---|---|---|" + "---|" * len(unseen)]
    for k in order:
        lines.append(f"| {k} | {mean[k]:.2f} | {change[k]:.2f} | " + " | ".join(f"{dist[k][d]:.2f}" for d in unseen)
                     + " |")
    lines += ["", f"Target: converter <= half the bare offset ({0.5 * offset:.2f} dB): "
              + (f"met by {best} ({mean[best]:.2f} dB)." if met else
                 f"missed (best form {best}: {mean[best]:.2f} dB)." if best else "no converter trained."),
              f"Training time per form (s): {train_s}; data preparation {prep_s:.0f} s; wall {wall:.0f} s "
              "(2-core CPU shared with other jobs, nice 19).",
              ]
    plotted = {"stochastic", "pure"} <= set(converted)
    lines.append(f"Figure: {args.name}.png (one clip to three devices, beside the real recordings)." if plotted else
                 "No figure: it needs the stochastic and pure forms (--forms).")
    write_results(args.name, {"data_seed": args.data_seed, "devices": unseen, "distance_db": dist, "mean_db": mean, "speech_change_db": change,
                              "target_met": met, "train_s": train_s, "wall_s": wall,
                              "config": {k: v for k, v in vars(args).items() if k != "data"} | {"data": "fsdd+micirp"},
                              "features": cfg.to_json()}, "\n".join(lines))
    if plotted:
        quiet = np.argmax(np.mean(ref_feat < np.percentile(ref_feat, 30), axis=(1, 2)))
        _plot(RESULTS / f"{args.name}.png", int(quiet), unseen[:3], ref_feat, real, converted, cfg)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
