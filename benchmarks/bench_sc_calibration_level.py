"""How loud the mismatch benchmark's calibration clips are against the reference's training clips: the level an
unpaired estimate (``sc`` with ``level="match"``) reads into every device from content alone.

For each data seed and track, the mean over clips of each clip's loudest frames (the 20 loudest Hann frames,
n_fft 256, hop 64) of the clean calibration clips (16 in ``generalize``, the 200 adaptation clips in ``adapt``)
minus the same for the clean clips the reference records in training. No device is involved: any difference is
content. A few seconds.

    PYTHONPATH=src python benchmarks/bench_sc_calibration_level.py [--seeds 1 2 3] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results


def loud_level_db(waves: np.ndarray) -> float:
    from micmatch.spectrum_correction import frame_levels_db

    return float(np.mean([np.sort(frame_levels_db(w, n_fft=256, hop_length=64))[-20:].mean() for w in waves]))


def measure(data_dir: Path, seed: int, track: str) -> dict:
    from micmatch.bench.data import MismatchConfig, prepare_data
    from micmatch.bench.plan import plan_devices
    from micmatch.corpus import load_corpus
    from micmatch.simulate import list_irs

    cfg = MismatchConfig(data_seed=seed, n_fft=256, hop_length=128, n_mels=40, track=track, max_test=20)
    corpus = load_corpus(data_dir / "fsdd", seed=seed)
    plan = plan_devices(list_irs(data_dir / "micirp" / "ir"), n_seen=cfg.n_seen, n_unseen=cfg.n_unseen, seed=seed)
    data = prepare_data(corpus, plan, cfg)
    calibration = data.adapt_waves if track == "adapt" else data.train_waves[data.calibration]
    reference = data.train_waves[data.assign == 0]
    return {"seed": seed, "track": track, "clips": len(calibration),
            "difference_db": loud_level_db(calibration) - loud_level_db(reference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    rows = [measure(args.data, s, t) for s in args.seeds for t in ("generalize", "adapt")]
    lines = ["# Content loudness of the calibration clips against the reference's training clips", "",
             "Loudest-frame level of the clean calibration clips minus that of the reference's clean training "
             "clips (dB); an unpaired `sc` with `level=\"match\"` reads this into every device. Produced by "
             "`benchmarks/bench_sc_calibration_level.py`.", "",
             "| data seed | track | calibration clips | difference (dB) |", "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['track']} | {r['clips']} | {r['difference_db']:+.2f} |" for r in rows]
    md = write_results("sc_calibration_level", {"seeds": args.seeds, "rows": rows}, "\n".join(lines))
    print(md.read_text())


if __name__ == "__main__":
    main()
