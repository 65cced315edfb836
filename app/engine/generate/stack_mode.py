"""Patched weights or side paths for a run: decided from what this machine measured, not guessed.

Patching costs once per run (rewriting the layers whose stack changed); the side path costs on every UNet
call. Which is cheaper depends on the model, the device, the image size and the number of steps: on
small models the side path triples the time per image, on an SD1.5 UNet on CPU it adds ~6 % per step
while patching three styles costs a fraction of a step — so a 2-step preview while a slider is dragged
is better off on the side path, a 20-step image patched.

Both costs are measured as the generator runs: every UNet call is timed (``observe_call``) with the
side-path work active at that moment, every patch is timed (``observe_patch``). Until a side-path call
has been seen at some size, the side path is assumed to cost ``DEFAULT_SIDE_FRACTION`` of a plain call
(the smallest overhead measured, SD1.5 shape on CPU), which errs towards the side path for short runs.
With nothing measured yet, the run is patched (what ComfyUI always does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_SIDE_FRACTION = 0.05
MIN_SIDE_FRACTION = 0.01  # a side path is never free: a measured "no extra cost" is timing noise
_EMA = 0.3  # weight of the newest measurement: follows a machine whose load changes, ignores one odd call


def _ema(old: float | None, new: float) -> float:
    return new if old is None else (1 - _EMA) * old + _EMA * new


@dataclass
class StackCostModel:
    patch_seconds_per_work: float | None = None  # per ``weight_patch.patch_work`` unit
    plain_call: dict[int, float] = field(default_factory=dict)  # UNet input size -> s per call, no side path
    side_per_unit: dict[int, float] = field(default_factory=dict)  # size -> extra s per call per side unit

    def observe_patch(self, work: float, seconds: float) -> None:
        if work > 0:
            self.patch_seconds_per_work = _ema(self.patch_seconds_per_work, seconds / work)

    def observe_call(self, size: int, side_units: int, seconds: float) -> None:
        """One UNet call of ``size`` input elements (batch·h·w) with ``side_units`` of side-path work active."""
        if side_units <= 0:
            self.plain_call[size] = _ema(self.plain_call.get(size), seconds)
            return
        plain = self.plain_call.get(size)
        if plain is not None:
            extra = max(0.0, seconds - plain) / side_units
            self.side_per_unit[size] = _ema(self.side_per_unit.get(size), extra)

    def estimate_side_seconds(self, size: int, side_units: int, calls: int) -> float | None:
        """Extra seconds the side path would add over ``calls`` UNet calls; None when nothing is known."""
        if side_units <= 0:
            return 0.0
        plain = _scaled(self.plain_call, size)
        per_unit = _scaled(self.side_per_unit, size)
        if per_unit is not None:
            floor = plain * MIN_SIDE_FRACTION if plain is not None else 0.0
            return max(per_unit * side_units, floor) * calls
        return None if plain is None else plain * DEFAULT_SIDE_FRACTION * calls

    def estimate_patch_seconds(self, work: float) -> float | None:
        return None if self.patch_seconds_per_work is None else self.patch_seconds_per_work * work

    def choose(self, *, size: int, calls: int, side_units: int, patch_work: float, restore_work: float = 0.0) -> str:
        """``"patch"`` or ``"side"`` for a run, whichever is expected to cost less.

        ``restore_work``: what going to the side path costs first (putting back layers patched earlier).
        """
        if patch_work <= 0:
            return "patch"  # the weights already hold this stack
        side = self.estimate_side_seconds(size, side_units, calls)
        patch = self.estimate_patch_seconds(patch_work)
        if side is None or patch is None:
            return "patch"
        side += self.estimate_patch_seconds(restore_work) or 0.0
        return "patch" if patch <= side else "side"


def _scaled(table: dict[int, float], size: int) -> float | None:
    """The measurement for ``size``, else the nearest size's scaled by the size ratio (cost ~ pixels)."""
    if size in table:
        return table[size]
    if not table:
        return None
    nearest = min(table, key=lambda s: abs(s - size))
    return table[nearest] * size / nearest
