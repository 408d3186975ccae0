"""Corpus loading: metadata columns, splits, and every error a bad description can raise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from micmatch.corpus import load_corpus, sorted_labels, stratified_split
from micmatch.errors import CorpusError


def _make(tmp_path: Path, rows: list[str], header: str = "filename,label", files: list[str] | None = None) -> Path:
    root = tmp_path / "corpus"
    (root / "audio").mkdir(parents=True, exist_ok=True)
    names = files if files is not None else [r.split(",")[0] for r in rows]
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), np.zeros(800, dtype=np.float32), 8000)
    (root / "metadata.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def test_explicit_split_device_and_extra_columns(tmp_path):
    rows = [f"audio/{i}.wav,{i % 3},dev{i % 2},{'test' if i < 3 else 'train'},extra" for i in range(9)]
    root = _make(tmp_path, rows, header="filename,label,device,split,speaker")
    c = load_corpus(root)
    assert c.classes == ("0", "1", "2")
    assert [x.filename for x in c.test] == ["audio/0.wav", "audio/1.wav", "audio/2.wav"]
    assert len(c.train) == 6
    assert c.devices == ("dev0", "dev1")
    assert [x.filename for x in c.select(split="train", device="dev1")] == ["audio/3.wav", "audio/5.wav", "audio/7.wav"]
    np.testing.assert_array_equal(c.label_indices(c.test), [0, 1, 2])
    assert c.clips[0].path == root / "audio" / "0.wav"


def test_seeded_stratified_split_when_no_split_column(tmp_path):
    rows = [f"audio/{i}.wav,{'ab'[i % 2]}" for i in range(20)]
    root = _make(tmp_path, rows)
    a = load_corpus(root, seed=3, test_fraction=0.2)
    b = load_corpus(root, seed=3, test_fraction=0.2)
    c = load_corpus(root, seed=4, test_fraction=0.2)
    assert [x.split for x in a.clips] == [x.split for x in b.clips]
    assert [x.split for x in a.clips] != [x.split for x in c.clips]
    # Stratified: 2 of 10 clips per label go to test.
    assert sorted(x.label for x in a.test) == ["a", "a", "b", "b"]
    assert a.clips[0].device is None and a.devices == ()


def test_stratified_split_keeps_training_examples():
    labels = ["x"] * 2 + ["y"] * 1 + ["z"] * 10
    t = stratified_split(labels, test_fraction=0.9, seed=0)
    assert t[:2].sum() == 1          # never all of a label
    assert not t[2]                  # a single clip stays in training
    assert t[3:].sum() == 9
    with pytest.raises(CorpusError, match=r"test_fraction=1.5 must be a number in \(0.0, 1.0\)"):
        stratified_split(labels, test_fraction=1.5)


def test_numeric_labels_sort_numerically():
    assert sorted_labels(["10", "2", "1"]) == ("1", "2", "10")
    assert sorted_labels(["b", "a", "10"]) == ("10", "a", "b")


def test_fsdd_metadata_just_works(data_dir):
    c = load_corpus(data_dir / "fsdd")
    assert c.classes == tuple(str(i) for i in range(10))
    assert len(c.train) == 2700 and len(c.test) == 300
    assert c.train[0].path.is_file()


@pytest.mark.parametrize("rows, header, files, match", [
    (["a.wav,1"], "file,label", None, r"missing column\(s\) filename"),
    (["a.wav,1"], "filename,class", None, r"missing column\(s\) label"),
    (["audio/a.wav,1", "audio/b.wav,2"], "filename,label", ["audio/a.wav"], r"1 file\(s\) listed .* missing: audio/b.wav"),
    (["../outside.wav,1"], "filename,label", [], r"filename='../outside.wav' escapes the corpus folder"),
    (["/abs/a.wav,1"], "filename,label", [], r"filename='/abs/a.wav' is absolute"),
    (["a.wav,1,train", "b.wav,2,test"], "filename,label,split", None, r"label\(s\) 2 have no clip in the training split"),
    (["a.wav,1,valid"], "filename,label,split", None, r"split='valid' must be one of"),
    (["a.wav,"], "filename,label", None, r"row 2: empty label"),
    ([",1"], "filename,label", [], r"row 2: empty filename"),
    (["a.wav,1", "./a.wav,2"], "filename,label", ["a.wav"], r"rows 2 and 3 both list"),
    ([], "filename,label", [], r"no rows"),
])
def test_errors(tmp_path, rows, header, files, match):
    root = _make(tmp_path, rows, header=header, files=files)
    with pytest.raises(CorpusError, match=match):
        load_corpus(root)


def test_missing_folder_and_csv(tmp_path):
    with pytest.raises(CorpusError, match="corpus folder .* not found"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="metadata.csv not found"):
        load_corpus(tmp_path)
    root = _make(tmp_path, ["a.wav,1"])
    with pytest.raises(CorpusError, match="split='dev' must be one of"):
        load_corpus(root).select(split="dev")
