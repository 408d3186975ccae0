"""Devices of the mismatch benchmark: which impulse responses play the reference, seen and unseen devices.

Impulse responses become simulated devices (:func:`plan_devices`): a few *seen* devices contribute a small
fraction of the training clips (as devices B and C did in DCASE 2019 task 1b: 3 h each beside 40 h of device A);
*unseen* devices appear only in the test set. Augmentation impulse responses must not be test devices:
:func:`check_disjoint` compares names and file contents and refuses to run otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmatch.errors import CorpusError
from micmatch.simulate import file_sha256

#: Name of the reference device when it is the corpus's own recordings.
ORIGINAL = "original"
ROLES = ("reference", "seen", "unseen")


@dataclass(frozen=True)
class SimDevice:
    """A device of the benchmark: its name, role, and impulse-response file (None for the original recordings)."""

    name: str
    role: str
    path: Path | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DevicePlan:
    """Reference, seen and unseen devices (in this order in ``devices``) and the augmentation IR files."""

    devices: tuple[SimDevice, ...]
    aug_irs: tuple[Path, ...] = ()

    def role(self, role: str) -> list[SimDevice]:
        return [d for d in self.devices if d.role == role]

    @property
    def reference(self) -> SimDevice:
        return self.role("reference")[0]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.devices]

    def to_json(self) -> dict:
        return {
            "reference": self.reference.name,
            "seen": [d.name for d in self.role("seen")],
            "unseen": [d.name for d in self.role("unseen")],
            "aug_irs": [p.stem for p in self.aug_irs],
        }


def _by_name(paths: Sequence[Path]) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for p in paths:
        if p.stem in names:
            raise CorpusError(f"two impulse responses are named {p.stem!r} ({names[p.stem]} and {p}); "
                              "device names come from file names: rename one")
        names[p.stem] = p
    return names


def plan_devices(irs: Sequence[str | os.PathLike], *, n_seen: int = 2, n_unseen: int = 6, seed: int = 0,
                 reference: str | None = None, seen: Sequence[str] | None = None,
                 unseen: Sequence[str] | None = None, aug_irs: Sequence[str | os.PathLike] = (),
                 aug_from_rest: bool = False) -> DevicePlan:
    """Give impulse responses their roles: named ones first, the rest drawn with ``default_rng(seed)``.

    Parameters
    ----------
    irs : sequence of path-like
        Impulse-response files; a device is named after its file's stem.
    n_seen, n_unseen : int
        How many seen / unseen devices to draw when ``seen`` / ``unseen`` do not name them.
    reference : str, optional
        Name of an impulse response to use as the reference device; default: the original recordings.
    aug_irs : sequence of path-like
        Augmentation impulse responses (from a separate folder).
    aug_from_rest : bool
        Use the impulse responses of ``irs`` that got no role as the augmentation set (a seeded split of one
        folder into test devices and augmentation IRs).

    Raises
    ------
    CorpusError
        Unknown or repeated names, too few impulse responses, or an augmentation IR that is also a device.
    """
    available = _by_name([Path(p) for p in irs])
    order = list(available)
    if n_seen < 0 or n_unseen < 0:
        raise CorpusError(f"n_seen={n_seen} and n_unseen={n_unseen} must be >= 0")

    def named(names: Sequence[str] | None, what: str) -> list[str]:
        out = list(names or [])
        for n in out:
            if n not in available:
                raise CorpusError(f"{what} device {n!r} is not among the impulse responses "
                                  f"({', '.join(order[:8])}{', ...' if len(order) > 8 else ''})")
        return out

    ref = named([reference] if reference else None, "reference")
    seen_names = named(seen, "seen")
    unseen_names = named(unseen, "unseen")
    taken = ref + seen_names + unseen_names
    if len(set(taken)) != len(taken):
        raise CorpusError(f"a device has two roles: reference={ref}, seen={seen_names}, unseen={unseen_names}")
    rest = [n for n in order if n not in taken]
    want = (0 if seen is not None else n_seen) + (0 if unseen is not None else n_unseen)
    if want > len(rest):
        raise CorpusError(f"{want} more devices are needed but only {len(rest)} impulse responses are left; "
                          "pass fewer --seen/--unseen or more impulse responses")
    drawn = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))[:want]]
    if seen is None:
        seen_names, drawn = drawn[:n_seen], drawn[n_seen:]
    if unseen is None:
        unseen_names = drawn[:n_unseen]
    if not unseen_names and not seen_names:
        raise CorpusError("the benchmark needs at least one seen or unseen device; pass --unseen N or names")

    def device(name: str, role: str) -> SimDevice:
        return SimDevice(name, role, available[name], file_sha256(available[name]))

    devices = [device(ref[0], "reference") if ref else SimDevice(ORIGINAL, "reference")]
    devices += [device(n, "seen") for n in seen_names] + [device(n, "unseen") for n in unseen_names]
    used = {d.name for d in devices}
    aug = [Path(p) for p in aug_irs]
    if aug_from_rest:
        aug += [available[n] for n in order if n not in used]
    plan = DevicePlan(tuple(devices), tuple(sorted(set(aug))))
    check_disjoint(plan.devices, plan.aug_irs)
    return plan


def check_disjoint(devices: Sequence[SimDevice], aug_irs: Sequence[str | os.PathLike]) -> None:
    """Refuse augmentation impulse responses that are also benchmark devices, by name or by file content.

    Raises
    ------
    CorpusError
        Naming the augmentation file and the device it duplicates.
    """
    by_name = {d.name: d for d in devices if d.path is not None}
    by_hash = {d.sha256: d for d in devices if d.sha256 is not None}
    for p in aug_irs:
        p = Path(p)
        if p.stem in by_name:
            raise CorpusError(f"augmentation IR {p} has the name of test device {p.stem!r}; an augmentation IR "
                              "must not be a test device: remove it from --aug-irs or pick other devices")
        twin = by_hash.get(file_sha256(p))
        if twin is not None:
            raise CorpusError(f"augmentation IR {p} has the same content as test device {twin.name!r} "
                              f"({twin.path}); remove it from --aug-irs or pick other devices")


__all__ = ["DevicePlan", "ORIGINAL", "ROLES", "SimDevice", "check_disjoint", "plan_devices"]
