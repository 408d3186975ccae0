"""Pieces every ``micmatch`` command shares: click settings, option checks, error lines, inputs and output plans.

The commands' modules import from here and never from one another, so no command module depends on another.
Keep this module light: heavy libraries are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from micmatch import audio as audio_io
from micmatch.errors import AudioError, MicmatchError

#: Keyword arguments of every command: ``-h`` as well as ``--help``, and help text up to 100 columns wide.
COMMON = {"context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100}}

#: File types a plot can be written as.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

#: Largest FFT size and FIR length accepted (far beyond any use; larger ones only exhaust memory).
MAX_N_FFT = 1 << 24
MAX_N_TAPS = (1 << 20) + 1

#: Choices of ``--compute``, where torch runs.
COMPUTE_CHOICES = ("auto", "cpu", "cuda")


def fail_line(message: str) -> None:
    """Print one error line on stderr (``micmatch: error: MESSAGE``); the command goes on."""
    click.echo(f"micmatch: error: {message}", err=True)


def warn_line(message: str) -> None:
    """Print one warning line on stderr (``micmatch: warning: MESSAGE``)."""
    click.echo(f"micmatch: warning: {message}", err=True)


class WarningLines:
    """A batch's warnings as ``micmatch: warning:`` lines, the same whatever the number of workers.

    Each warning is one line as it comes (the message names its file), except kinds that a batch sums up (a
    :class:`~micmatch.errors.MicmatchWarning` with a ``summary``): those become one line per kind at the end
    (``14 of 200 files had frames dominated by a DC offset; ...; -v lists them``), after every file's line when
    ``verbose``.
    """

    def __init__(self, *, verbose: bool | None = None) -> None:
        if verbose is None:
            ctx = click.get_current_context(silent=True)
            verbose = bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("verbose"))
        self.verbose = verbose
        self.grouped: dict[type, list[str]] = {}

    def add(self, category: type[Warning], message: str) -> None:
        """Print a warning's line now, or keep it for its kind's summary line."""
        if getattr(category, "summary", None) is None:
            warn_line(message)
            return
        self.grouped.setdefault(category, []).append(message)
        if self.verbose:
            warn_line(message)

    def add_caught(self, caught: list) -> None:
        """Take the warnings recorded by ``warnings.catch_warnings(record=True)`` (and empty that list)."""
        for w in caught:
            self.add(w.category, str(w.message))
        caught.clear()

    def finish(self, n_files: int) -> None:
        """Print one line per summed-up kind: how many of the batch's ``n_files`` files raised it."""
        for category, messages in self.grouped.items():
            more = "" if self.verbose else "; -v lists them"
            warn_line(f"{len(messages)} of {n_files} files {category.summary}{more}")
        self.grouped.clear()


def file_error(path, exc: BaseException) -> str:
    """One line for a file that failed: the project's message, or the OS's reason, naming the file once."""
    if isinstance(exc, MicmatchError):
        message = str(exc)
    else:
        message = getattr(exc, "strerror", None) or str(exc)
    return message if str(path) in message else f"{path}: {message}"


def progress_enabled() -> bool:
    """Whether to draw progress bars: only when stderr is a terminal (never into logs or pipes)."""
    return sys.stderr.isatty()


def collect_files(inputs) -> list[Path]:
    """The audio files of ``inputs`` (files, or folders walked recursively); an :class:`AudioError` if none."""
    files = audio_io.find_audio_files(inputs)
    if not files:
        raise AudioError(f"no audio files found in: {', '.join(inputs)}")
    return files


def output_paths(inputs, output_dir: Path, *, exclude=()) -> list[tuple[Path, Path]]:
    """Plan one output per input audio file: ``(input, output_dir / relative path)`` pairs, in walk order.

    A file given directly keeps its name; a file found in a folder keeps its path below that folder. Folders in
    ``exclude`` (an output folder inside an input folder) are left out of the walk.

    Raises
    ------
    AudioError
        When two inputs would be written to one output, or no audio file is found.
    """
    output_dir = Path(output_dir)
    pairs: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for item in inputs:
        root = Path(item)
        for f in audio_io.find_audio_files([root], exclude=exclude):
            dst = output_dir / (f.relative_to(root) if root.is_dir() else Path(f.name))
            if dst in seen:
                raise AudioError(f"{f}: its output {dst} would overwrite the output of {seen[dst]}")
            seen[dst] = f
            pairs.append((f, dst))
    if not pairs:
        raise AudioError(f"no audio files found in: {', '.join(inputs)}")
    return pairs


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that refuses NaN and the infinities (which pass its comparisons: NaN compares false)."""

    name = "float range"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value} is not a finite number", param, ctx)
        return rv

    def _describe_range(self) -> str:
        return super()._describe_range() if self.min is not None or self.max is not None else ""


#: A plain float option that must be finite (shown as ``FLOAT`` in help).
FINITE_FLOAT = FiniteFloatRange()
FINITE_FLOAT.name = "float"


# Option callbacks: a bad value is a usage error (one line, exit code 2) rather than a traceback from deep inside.

def even_n_fft(ctx, param, value: int) -> int:
    """``--n-fft``: an even size from 16 to :data:`MAX_N_FFT` whose statistics fit in memory."""
    from micmatch.resources import check_memory, stats_bytes

    if value < 16 or value % 2 or value > MAX_N_FFT:
        raise click.BadParameter(f"{value} must be an even integer between 16 and {MAX_N_FFT}")
    try:
        check_memory(stats_bytes(value), f"--n-fft {value}")
    except MicmatchError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def odd_n_taps(ctx, param, value: int) -> int:
    """``--n-taps``: an odd FIR length from 3 to :data:`MAX_N_TAPS` (linear-phase type I)."""
    if value < 3 or value % 2 == 0 or value > MAX_N_TAPS:
        raise click.BadParameter(f"{value} must be an odd integer between 3 and {MAX_N_TAPS} (a linear-phase "
                                 f"type I filter)")
    return value


def finite_level(ctx, param, value: float) -> float:
    """A level in dB that must be finite."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} must be a finite level in dB")
    return value


def relative_gate(ctx, param, value: float) -> float:
    """``--relative-gate-db``: a finite number of dB >= 0 (0 disables the gate)."""
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"{value} must be a finite number of dB >= 0 (0 disables the relative gate)")
    return value


def band_range(ctx, param, value):
    """``--band LO HI``: ``None``, or a pair with 0 <= LO < HI (Hz)."""
    if value is None:
        return None
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise click.BadParameter(f"{lo} {hi}: needs 0 <= LO < HI (Hz), both finite")
    return (lo, hi)


def shape_options(*, band_default: str):
    """``--strength``, ``--band LO HI`` and ``--smooth``: how much of a correction, where, how smooth (the options
    that shape a correction in ``match`` and ``event``); ``band_default`` says where the band is when not given."""

    def decorate(func):
        for option in reversed([
            click.option("--strength", type=FiniteFloatRange(0.0, 1.0), default=1.0, show_default=True,
                         help="Scale of the correction in dB (0 = none, 1 = full)."),
            click.option("--band", nargs=2, type=FINITE_FLOAT, default=None, callback=band_range, metavar="LO HI",
                         help=f"Band of the correction in Hz. Default: {band_default}."),
            click.option("--smooth", "smoothing", type=FiniteFloatRange(min=0.0), default=None,
                         help="Fractional-octave smoothing of the correction, e.g. 0.1667 for 1/6 octave "
                              "(default: none)."),
        ]):
            func = option(func)
        return func

    return decorate


def check_mel_bands(sample_rate: int, n_fft: int, n_mels: int, *, fmin: float = 0.0,
                    fmax: float | None = None) -> None:
    """Refuse mel settings that leave bands without any FFT bin (constant, useless features), naming the options."""
    import numpy as np

    from micmatch.errors import ParameterError
    from micmatch.logmel import mel_filterbank

    bank = mel_filterbank(sample_rate, n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    empty = int(np.count_nonzero(~np.any(bank > 0, axis=1)))
    if empty:
        raise ParameterError(f"--n-mels {n_mels} with --n-fft {n_fft} at {sample_rate} Hz leaves {empty} of "
                             f"{n_mels} mel bands without any FFT bin; use fewer mel bands or a larger --n-fft")


def compute_option(*, default: str = "auto", dest: str = "compute",
                   help: str = "Where torch runs: CUDA when available (auto), or force cpu/cuda."):
    """The ``--compute`` option: the torch compute device of a command (one name on every command)."""
    return click.option("--compute", dest, type=click.Choice(COMPUTE_CHOICES), default=default, show_default=True,
                        help=help)


def check_plot_suffix(path: str, option: str) -> None:
    """Refuse a plot file name that is not one of :data:`PLOT_SUFFIXES` (a usage error naming ``option``)."""
    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise click.BadParameter(f"{path}: use a {', '.join(PLOT_SUFFIXES)} file name", param_hint=f"'{option}'")
