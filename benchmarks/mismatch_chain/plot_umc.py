"""What the benchmark's converter does: one held-out test clip converted to three devices beside the same clip
recorded by them.

Targets: two of the converter's own training devices (augmentation IRs with their drawn chains) and the first
unseen test device of the run (its IR and chain from ``results.json``), each conditioned on its band response
(IR plus band limits). The clip comes from the corpus's test split, which the converter never saw.

    python benchmarks/mismatch_chain/plot_umc.py benchmarks/mismatch_chain/data-seed-2 [--clip N]
Writes ``conversion.png`` and ``conversion.json`` (per-band shift errors) into that folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from micmatch.audio import load
from micmatch.corpus import load_corpus
from micmatch.conditioning import device_chain_band_response
from micmatch.features import log_mel
from micmatch.learn.converter_model import Converter
from micmatch.plot import plot_conversion
from micmatch.simulate import apply_device_chain, load_ir

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a data-seed-N folder holding results.json and umc-converter.pt")
    ap.add_argument("--clip", type=int, default=0, help="index of the test clip")
    ap.add_argument("--irs", type=Path, default=DATA / "micirp" / "ir")
    args = ap.parse_args()
    doc = json.loads((args.run / "results.json").read_text())
    conv = Converter.load(args.run / "umc-converter.pt")
    cfg = conv.feature_config
    corpus = load_corpus(DATA / "fsdd", seed=doc["config"]["data_seed"])
    x, _ = load(corpus.test[args.clip].path, sample_rate=cfg.sample_rate, channels="mix")
    n = int(round(doc["config"]["clip_s"] * cfg.sample_rate))
    wave = np.zeros(n)
    wave[: min(n, x.shape[1])] = x[0, :n]
    chains = dict(list(conv.info["simulated_devices"].items())[:2])
    unseen = doc["plan"]["unseen"][0]
    chains[f"{unseen} (unseen test device)"] = {**doc["info"]["device_chains"][unseen],
                                                "ir": str(args.irs / doc["info"]["device_chains"][unseen]["ir"])}
    source = log_mel(wave, cfg.sample_rate, config=cfg)
    converted, recorded, diffs = [], [], []
    for chain in chains.values():
        ir = load_ir(chain["ir"], cfg.sample_rate)
        d = device_chain_band_response(chain, config=cfg, ir=ir)
        diffs.append(d)
        converted.append(conv.convert(source[None], d)[0])
        recorded.append(log_mel(apply_device_chain(wave, cfg.sample_rate, chain, ir=ir), cfg.sample_rate, config=cfg))
    names = list(chains)
    path = plot_conversion(source, converted, recorded, diffs, names, args.run / "conversion.png",
                           band_hz=cfg.band_frequencies(), hop_s=cfg.hop_length / cfg.sample_rate,
                           title=f"{corpus.test[args.clip].path.name}: umc converter of {args.run.name} "
                                 f"(generator norm {conv.config.norm})")
    summary = {name: {"frame_error_db": float(np.abs(c - r).mean()),
                      "offset_frame_error_db": float(np.abs(source + d[:, None] - r).mean()),
                      "from_offset_db": float(np.abs(c - source - d[:, None]).mean())}
               for name, c, r, d in zip(names, converted, recorded, diffs)}
    (args.run / "conversion.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(path, json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
