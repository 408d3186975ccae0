"""The output rule (micmatch.outputs): outputs are never inputs nor inside input folders, appear only when complete,
leave no staging files behind (on failure, SIGINT, SIGTERM, and after SIGKILL on the next run), concurrent writers
of one responses file all keep their update, and an interrupted batch resumes with --skip-existing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from micmatch import audio, outputs
from micmatch.cli import main
from micmatch.errors import OutputError
from micmatch.response import ResponseSet
from micmatch.simulate import BUILTIN_DEVICES

SR = 8000
FAST = ["--n-fft", "256", "--hop", "64"]
SRC = Path(__file__).resolve().parents[1] / "src"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("micmatch: error:")]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """recordings/<device>/clip<i>.wav, 16-bit, 8 kHz, the same noise through two device models."""
    root = tmp_path_factory.mktemp("outputs") / "recordings"
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(SR // 2) * 0.05 for _ in range(3)]
    for name in ("phone", "studio"):
        for i, x in enumerate(clips):
            y = BUILTIN_DEVICES[name].record(x, SR, rng=np.random.default_rng(i))
            audio.save(root / name / f"clip{i}.wav", y.astype(np.float32), SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def responses(recordings) -> Path:
    out = recordings.parent / "responses.json"
    assert run("profile", recordings, "-o", out, *FAST).exit_code == 0
    return out


# Refusals --------------------------------------------------------------------------------------------------------
def test_profile_refuses_to_overwrite_an_input(recordings):
    target = recordings / "phone" / "clip0.wav"
    before = target.read_bytes()
    r = run("profile", target, "--device-from", "name:phone", "-o", target, *FAST)
    assert r.exit_code == 1 and len(_errors(r)) == 1 and "is an input" in r.stderr
    assert target.read_bytes() == before


def test_outputs_inside_an_input_folder_are_refused(recordings, responses):
    r = run("profile", recordings, "-o", recordings / "phone" / "r.json", *FAST)
    assert r.exit_code == 1 and "inside the input folder" in r.stderr
    assert not (recordings / "phone" / "r.json").exists()
    r = run("features", recordings, "-o", recordings / "phone" / "clip1.wav", "--n-fft", 256, "--hop", 64,
            "--n-mels", 16)
    assert r.exit_code == 1 and len(_errors(r)) == 1
    r = run("export", responses, "--device", "phone", "--reference", "studio", "--format", "csv", "-o", responses)
    assert r.exit_code == 1 and "is an input" in r.stderr


def test_output_under_a_regular_file_is_one_line(recordings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("profile", recordings, "-o", blocker / "sub" / "r.json", *FAST)
    expected = f"micmatch: error: -o {blocker / 'sub' / 'r.json'}: cannot write under {blocker}: it is a file, not a folder"
    assert r.exit_code == 1 and _errors(r) == [expected]


def test_correct_into_the_input_folder_itself_is_refused(recordings, responses):
    r = run("correct", recordings / "phone", "--responses", responses, "--device", "phone", "--reference", "studio",
            "-o", recordings / "phone")
    assert r.exit_code == 1 and "is the input folder" in r.stderr


def test_correct_into_a_subfolder_of_its_input_does_not_correct_its_own_outputs(recordings, responses, tmp_path):
    src = tmp_path / "in"
    for p in (recordings / "phone").glob("*.wav"):
        (src / p.name).parent.mkdir(parents=True, exist_ok=True)
        (src / p.name).write_bytes(p.read_bytes())
    args = ("correct", src, "--responses", responses, "--device", "phone", "--reference", "studio",
            "-o", src / "matched")
    for _ in range(2):
        r = run(*args)
        assert r.exit_code == 0, r.output
        assert "corrected 3/3" in r.stdout
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.wav")) == [
        "clip0.wav", "clip1.wav", "clip2.wav", "matched/clip0.wav", "matched/clip1.wav", "matched/clip2.wav"]


def test_measure_plot_with_a_bad_suffix_fails_before_the_work(tmp_path, monkeypatch):
    assert run("sweep", "-o", tmp_path / "s.wav", "--duration", 0.5, "--sample-rate", SR).exit_code == 0
    out = tmp_path / "r.json"
    r = run("measure", tmp_path / "s.wav", "--sweep", tmp_path / "s.wav", "--device", "d", "-o", out,
            "--n-fft", 256, "--plot", tmp_path / "p.txt")
    assert r.exit_code == 2 and "p.txt" in r.stderr and not out.exists()
    # A plot that fails after the work (here: the disk fills up) no longer loses the measurement.
    import micmatch.plot

    def disk_full(*args, **kwargs):
        raise OutputError(f"{tmp_path / 'p.png'}: cannot write: no space left on the device")

    monkeypatch.setattr(micmatch.plot, "plot_measured_response", disk_full)
    r = run("measure", tmp_path / "s.wav", "--sweep", tmp_path / "s.wav", "--device", "d", "-o", out,
            "--n-fft", 256, "--plot", tmp_path / "p.png")
    assert r.exit_code == 1 and len(_errors(r)) == 1 and "no space left" in r.stderr
    assert list(ResponseSet.load(out)) == ["d"]


# Staging files ---------------------------------------------------------------------------------------------------
def test_staging_names_are_never_audio_inputs(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    names = [outputs.staging_path(tmp_path / "b.wav").name, ".c.wav.0a1b2c3d.part.wav", ".d.wav.0a1b2c3d.stage.wav"]
    for n in names:
        assert outputs.is_staging(n)
        (tmp_path / n).write_bytes(b"RIFF")
    assert [p.name for p in audio.find_audio_files([tmp_path])] == ["a.wav"]
    assert not outputs.is_staging("a.wav") and not outputs.is_staging(".hidden.wav")


def test_stale_staging_of_dead_processes_is_removed_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".x.wav.{dead.pid}-0123abcd.mmstage"
    live = tmp_path / f".y.wav.{os.getppid()}-0123abcd.mmstage"
    legacy = tmp_path / ".z.wav.0123abcd.part.wav"
    for p in (stale, live, legacy):
        p.write_bytes(b"")
    removed = outputs.remove_stale_staging(tmp_path)
    assert sorted(removed) == sorted([stale, legacy]) and live.exists()


def test_atomic_path_leaves_nothing_when_the_write_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), outputs.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_path_on_a_missing_parent_under_a_file_is_an_output_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="it is a file, not a folder"), outputs.atomic_path(tmp_path / "f" / "o"):
        pass


# Concurrent writers ----------------------------------------------------------------------------------------------
_APPEND = """
import sys
import numpy as np
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig
name, out = sys.argv[1], sys.argv[2]
config = SpectralConfig(sample_rate=8000, n_fft=256, hop_length=64)
rs = ResponseSet(config, [DeviceResponse(name, np.zeros(129), method="sweep")])
rs.save_merged(out, merge_from=out)
"""


def _python(code: str, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_six_concurrent_appenders_all_keep_their_device(tmp_path):
    # Six processes each read-merge-write one responses file at the same time (what `measure --append` and `profile --merge` do).
    # Without the lock each reads the old file and the last rename wins: the issue saw 2 of 6 devices survive.
    out = tmp_path / "r.json"
    names = [f"dev{i}" for i in range(6)]
    procs = [_python(_APPEND, n, out) for n in names]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, results
    assert sorted(ResponseSet.load(out)) == names
    assert not [p for p in tmp_path.iterdir() if outputs.is_staging(p)]


_HOLD = """
import sys, time
from micmatch import outputs
with outputs.locked(sys.argv[1]):
    print("held", flush=True)
    time.sleep(30)
"""


def test_lock_times_out_with_one_line(tmp_path):
    target = tmp_path / "r.json"
    holder = _python(_HOLD, target)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match="another micmatch process has held its lock"), \
                outputs.locked(target, timeout=0.2):
            pass
    finally:
        holder.kill()
        holder.communicate()


# Interrupted batches ---------------------------------------------------------------------------------------------
#: Files in the interrupted batch: enough that a loaded machine cannot finish them all between the first output
#: appearing and the signal arriving (one FIR design per batch makes each file take milliseconds).
N_BATCH = 150

@pytest.fixture(scope="module")
def batch(tmp_path_factory, recordings):
    """A batch of N_BATCH half-second 16-bit files of one device, and the outputs of an uninterrupted run."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(7)
    (root / "in").mkdir()
    for i in range(N_BATCH):
        sf.write(root / "in" / f"c{i:03d}.wav", rng.standard_normal(SR // 2) * 0.05, SR, subtype="PCM_16")
    resp = recordings.parent / "responses.json"
    if not resp.exists():
        assert run("profile", recordings, "-o", resp, *FAST).exit_code == 0
    ref = root / "ref"
    args = ["correct", str(root / "in"), "--responses", str(resp), "--device", "phone", "--reference", "studio",
            "--method", "fir", "--n-taps", "255"]
    assert run(*args, "-o", ref).exit_code == 0
    return root, args, _tree(ref)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_batch_resumes_with_identical_outputs(batch, tmp_path, sig):
    _, args, reference = batch
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "micmatch", *args, "-o", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(out.glob("c*.wav"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    done = sorted(p.name for p in out.glob("*.wav"))
    assert 0 < len(done) < N_BATCH, "the batch was not interrupted mid-way"
    if sig != signal.SIGKILL:
        assert proc.returncode == (130 if sig == signal.SIGINT else 143)
        assert "interrupted" in err and "Traceback" not in err
        assert [p.name for p in out.iterdir() if not p.name.startswith("c")] == []  # no staging file left
    for name in done:  # what is there is complete
        assert (out / name).read_bytes() == reference[name]
    r = run(*args, "-o", out, "--skip-existing")
    assert r.exit_code == 0, r.output
    assert f"({len(done)} already there, skipped)" in r.stdout
    assert _tree(out) == reference  # identical outputs, and no stray file (a SIGKILL's staging file is removed)


def test_features_skip_existing_keeps_a_complete_output(recordings, tmp_path):
    out = tmp_path / "f.npz"
    args = ("features", recordings, "-o", out, "--n-fft", 256, "--hop", 64, "--n-mels", 16)
    assert run(*args).exit_code == 0
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    r = run(*args, "--skip-existing")
    assert r.exit_code == 0 and "skipped (--skip-existing)" in r.stderr
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before


def test_a_command_restores_the_sigterm_handler():
    before = signal.getsignal(signal.SIGTERM)
    run("sweep", "--help")
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_swallowed_termination_stops_the_batch_at_the_next_item(monkeypatch):
    # Python drops an exception that a signal handler raises while a finalizer runs (SoundFile.__del__): the
    # signal is remembered and batch loops raise it again between items.
    from micmatch import outputs
    from micmatch.parallel import map_files

    seen = []

    def work(item):
        seen.append(item)
        if item == 1:
            monkeypatch.setattr(outputs, "_received", signal.SIGTERM)  # as if the raise had been swallowed
        return item

    with pytest.raises(outputs.Terminated, match="terminated by signal 15"):
        list(map_files(work, [0, 1, 2, 3]))
    assert seen == [0, 1]
    monkeypatch.setattr(outputs, "_received", signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        outputs.raise_if_terminated()


def test_an_interruption_swallowed_by_a_finalizer_prints_no_traceback(monkeypatch, capsys):
    # The swallowed exception reaches sys.unraisablehook, which Python would print as "Exception ignored in ...
    # Traceback"; under handle_termination it is dropped quietly (raise_if_terminated raises it again).
    import gc

    class Finalized:
        def __del__(self):
            raise outputs.Terminated("terminated by signal 15")

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    previous = outputs.handle_termination()
    try:
        monkeypatch.setattr(outputs, "_received", signal.SIGTERM)
        Finalized()
        gc.collect()
        assert not reported and capsys.readouterr().err == ""
        with pytest.raises(outputs.Terminated):
            outputs.raise_if_terminated()
        monkeypatch.setattr(outputs, "_received", None)  # no signal received: reported as Python would
        Finalized()
        gc.collect()
        assert len(reported) == 1
    finally:
        outputs.restore_termination(previous)
    assert sys.unraisablehook == reported.append
