"""Datasets described by a folder and a metadata CSV: which file, which label, which device, which split.

A corpus is a folder holding ``metadata.csv`` with at least the columns ``filename`` (a path relative to the
folder) and ``label``; optional columns are ``device`` (the recording device of the clip) and ``split``
(``train`` or ``test``). Extra columns are kept out of the way and ignored. Without a ``split`` column a seeded,
label-stratified split is drawn (:func:`stratified_split`), so the same seed always gives the same split.

Everything that can be wrong with such a description is checked once, in :func:`load_corpus`, and reported as a
:class:`~micmatch.errors.CorpusError` naming the row, the value and the fix.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmatch import validate
from micmatch.errors import CorpusError

#: Columns a metadata CSV must have.
REQUIRED_COLUMNS = ("filename", "label")
#: Values allowed in the optional ``split`` column.
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Clip:
    """One row of a corpus: a file, its label, its device (None when unknown) and its split."""

    filename: str
    path: Path
    label: str
    device: str | None
    split: str


@dataclass(frozen=True)
class Corpus:
    """A labelled set of audio files with a train/test split.

    Attributes
    ----------
    root : Path
        The corpus folder; every clip's file lies inside it.
    clips : tuple of Clip
        In the order of the metadata file.
    classes : tuple of str
        Sorted labels (numerically when every label is an integer); a label's index is its class number.
    """

    root: Path
    clips: tuple[Clip, ...]
    classes: tuple[str, ...]

    @property
    def train(self) -> list[Clip]:
        return self.select(split="train")

    @property
    def test(self) -> list[Clip]:
        return self.select(split="test")

    @property
    def devices(self) -> tuple[str, ...]:
        """Sorted device names found in the metadata (empty when there is no ``device`` column)."""
        return tuple(sorted({c.device for c in self.clips if c.device is not None}))

    def select(self, *, split: str | None = None, device: str | None = None) -> list[Clip]:
        """Clips of one split and/or one device, in metadata order."""
        if split is not None and split not in SPLITS:
            raise CorpusError(f"split={split!r} must be one of {SPLITS}")
        return [c for c in self.clips
                if (split is None or c.split == split) and (device is None or c.device == device)]

    def label_indices(self, clips: list[Clip] | tuple[Clip, ...]) -> np.ndarray:
        """Class numbers of ``clips`` as an int64 array of shape ``(len(clips),)``."""
        index = {label: i for i, label in enumerate(self.classes)}
        return np.array([index[c.label] for c in clips], dtype=np.int64)


def sorted_labels(labels) -> tuple[str, ...]:
    """Distinct labels, numerically sorted when all are integers (``"2" < "10"``), else lexically."""
    unique = set(labels)
    try:
        return tuple(sorted(unique, key=int))
    except ValueError:
        return tuple(sorted(unique))


def stratified_split(labels, *, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Draw a label-stratified train/test split.

    Each label's clips are shuffled with ``numpy.random.default_rng(seed)`` and ``round(test_fraction * n)`` of
    them go to the test set, at least one when the label has two or more clips and never all of them, so every
    label keeps training examples.

    Parameters
    ----------
    labels : sequence of str [shape=(n_clips,)]
    test_fraction : float
        In (0, 1).
    seed : int

    Returns
    -------
    is_test : np.ndarray [shape=(n_clips,), dtype=bool]
    """
    validate.float_in_range(test_fraction, "test_fraction", low=0.0, high=1.0, low_inclusive=False,
                            high_inclusive=False, error=CorpusError)
    labels = list(labels)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in sorted_labels(labels):
        idx = np.flatnonzero([lab == label for lab in labels])
        if idx.size < 2:
            continue
        n_test = min(max(1, int(round(test_fraction * idx.size))), idx.size - 1)
        is_test[rng.permutation(idx)[:n_test]] = True
    return is_test


def _inside(root: Path, filename: str, row: int) -> Path:
    """The file's path under ``root``; refuses absolute paths and ``..`` that climb out of the folder."""
    if not filename:
        raise CorpusError(f"metadata row {row}: empty filename; every row needs a path relative to the folder")
    if os.path.isabs(filename) or Path(filename).is_absolute():
        raise CorpusError(f"metadata row {row}: filename={filename!r} is absolute; give a path relative to {root}")
    normal = os.path.normpath(filename)
    if normal == os.pardir or normal.startswith(os.pardir + os.sep):
        raise CorpusError(f"metadata row {row}: filename={filename!r} escapes the corpus folder {root}; "
                          "keep every file inside it")
    return root / normal


def label_files(paths, label_from: str, *, what: str = "label") -> tuple[list[str | None], list[str]]:
    """A label for each file, from ``dir``, ``regex:PATTERN``, ``csv:FILE`` or ``name:LABEL``.

    ``dir`` is the name of the file's folder; ``regex:PATTERN`` the first group (or the group named after
    ``what``) of a match on the path; ``csv:FILE`` the ``what`` column of a metadata CSV with a ``filename``
    (or ``path``) column, relative to the CSV's folder or a bare file name (the corpus format of
    :func:`load_corpus`); ``name:LABEL`` one label for every file.

    Returns
    -------
    labels : list of str or None
        None where no label was found; the reason is in ``problems``.
    problems : list of str
        One line per unlabelled file.
    """
    paths = [Path(p) for p in paths]
    forms = f"'dir', 'regex:PATTERN', 'csv:FILE' or 'name:{what.upper()}'"
    if label_from == "dir":
        # The folder as the path names it (made absolute, not resolved): a symlink in laptop/ pointing into
        # studio/ is a laptop file, as the user laid it out.
        labels = [Path(os.path.abspath(p)).parent.name or None for p in paths]
        return labels, [f"{p}: has no parent folder to name its {what}" for p, lab in zip(paths, labels) if lab is None]
    if label_from.startswith("name:"):
        if not label_from[5:]:
            example = "phone" if what == "device" else "dog"
            raise CorpusError(f"{what}_from='name:' needs a {what} name, e.g. name:{example}")
        return [label_from[5:]] * len(paths), []
    labels: list[str | None] = []
    problems: list[str] = []
    if label_from.startswith("regex:"):
        pattern = label_from[6:]
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise CorpusError(f"regex {pattern!r} is invalid: {exc}") from None
        if rx.groups == 0:
            raise CorpusError(f"regex {pattern!r} needs a group that captures the {what}, e.g. '([^/]+)/[^/]+$'")
        for p in paths:
            m = rx.search(p.as_posix())
            value = (m.group(what) if what in rx.groupindex else m.group(1)) if m else None
            labels.append(value or None)
            if not value:
                problems.append(f"{p}: regex {pattern!r} does not match this path")
        return labels, problems
    if label_from.startswith("csv:"):
        csv_path = Path(label_from[4:])
        table, by_name = _read_label_csv(csv_path, what)
        for p in paths:
            value = table.get(str(p.resolve()))
            if value is None:  # by its bare name, only when one row of the CSV has that name
                rows = by_name.get(p.name, [])
                if len(rows) > 1:
                    shown = ", ".join(f"{name} ({label})" for name, label in rows[:4])
                    raise CorpusError(f"{p}: not listed by its path in {csv_path}, and its name matches several "
                                      f"rows: {shown}; list it by its path")
                value = rows[0][1] if rows else None
            labels.append(value)
            if value is None:
                problems.append(f"{p}: not listed in {label_from[4:]}")
        return labels, problems
    raise CorpusError(f"{what}_from={label_from!r} must be {forms}")


def read_csv_table(path: str | os.PathLike, *, what: str) -> tuple[list[str], list[dict[str, str]]]:
    """The column names and rows of a UTF-8 CSV with a header (names and values stripped; a BOM allowed).

    Every way the file can fail to read (missing, not UTF-8, not CSV) is one :class:`CorpusError` naming the file
    and ``what`` it is (e.g. ``"label CSV"``)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{k.strip(): v.strip() if isinstance(v, str) else "" for k, v in r.items() if k is not None}
                    for r in reader]
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text; save the {what} as UTF-8") from None
    except csv.Error as exc:
        raise CorpusError(f"{path}: not a readable CSV ({exc})") from None
    return columns, rows


def _read_label_csv(path: Path, column: str) -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """From a CSV with ``filename`` (or ``path``) and ``column``: ``{resolved path: value}`` and
    ``{bare file name: [(row's name, value), ...]}``. A file listed twice with different values is refused."""
    fields, rows = read_csv_table(path, what=f"{column} CSV")
    key = "filename" if "filename" in fields else "path" if "path" in fields else None
    if key is None or column not in fields:
        raise CorpusError(f"{path}: needs columns 'filename' (or 'path') and {column!r}; found "
                          f"{', '.join(fields) or 'none'}")
    table: dict[str, str] = {}
    by_name: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        name, value = row.get(key, ""), row.get(column, "")
        if not name or not value:
            continue
        full = str((Path(name) if Path(name).is_absolute() else path.parent / name).resolve())
        if table.get(full, value) != value:
            raise CorpusError(f"{path}: {name} is listed twice with different {column}s, {table[full]!r} "
                              f"and {value!r}; keep one row per file")
        if full not in table:
            by_name.setdefault(Path(name).name, []).append((name, value))
        table[full] = value
    return table, by_name


def load_corpus(folder: str | os.PathLike, *, metadata: str = "metadata.csv", test_fraction: float = 0.2,
                seed: int = 0) -> Corpus:
    """Read a corpus folder and its metadata CSV, checking every row.

    Parameters
    ----------
    folder : path-like
        The corpus folder.
    metadata : str
        Name of the CSV inside ``folder``.
    test_fraction, seed
        Used only when the CSV has no ``split`` column: see :func:`stratified_split`.

    Raises
    ------
    CorpusError
        Missing folder, CSV or required column; empty file names or labels; files that are missing or lie outside
        the folder; duplicate rows; a ``split`` value other than train/test; a test label absent from training.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CorpusError(f"corpus folder {root} not found; pass a folder that holds {metadata}")
    csv_path = root / metadata
    if not csv_path.is_file():
        raise CorpusError(f"{csv_path} not found; a corpus folder needs a {metadata} with columns "
                          f"{', '.join(REQUIRED_COLUMNS)} (optional: device, split)")
    columns, rows = read_csv_table(csv_path, what="metadata CSV")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(columns) or "none"
        raise CorpusError(f"{csv_path}: missing column(s) {', '.join(missing)} (found: {found}); "
                          f"add them: filename = path relative to the folder, label = class name")
    if not rows:
        raise CorpusError(f"{csv_path}: no rows; list one clip per row")
    has_device = "device" in columns
    has_split = "split" in columns
    paths, labels, seen, absent = [], [], {}, []
    for i, r in enumerate(rows, start=2):  # row 1 is the header
        path = _inside(root, r["filename"], i)
        if not r["label"]:
            raise CorpusError(f"metadata row {i}: empty label for {r['filename']!r}; every clip needs a label")
        key = os.path.normpath(r["filename"])
        if key in seen:
            raise CorpusError(f"metadata rows {seen[key]} and {i} both list {r['filename']!r}; list each file once")
        seen[key] = i
        if has_split and r["split"] not in SPLITS:
            raise CorpusError(f"metadata row {i}: split={r['split']!r} must be one of {SPLITS}")
        if not path.is_file():
            absent.append(r["filename"])
        paths.append(path)
        labels.append(r["label"])
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise CorpusError(f"{len(absent)} file(s) listed in {csv_path} are missing: {shown}; "
                          "fix the paths or remove the rows")
    if has_split:
        splits = [r["split"] for r in rows]
    else:
        is_test = stratified_split(labels, test_fraction=test_fraction, seed=seed)
        splits = ["test" if t else "train" for t in is_test]
    clips = tuple(Clip(r["filename"], p, lab, (r["device"] or None) if has_device else None, s)
                  for r, p, lab, s in zip(rows, paths, labels, splits))
    train_labels = {c.label for c in clips if c.split == "train"}
    untrained = sorted_labels(c.label for c in clips if c.label not in train_labels)
    if untrained:
        raise CorpusError(f"label(s) {', '.join(untrained)} have no clip in the training split; "
                          "move some of their clips to split=train or drop those rows")
    return Corpus(root, clips, sorted_labels(labels))


__all__ = ["Clip", "Corpus", "REQUIRED_COLUMNS", "SPLITS", "label_files", "load_corpus", "sorted_labels",
           "stratified_split"]
