"""Applies the active stack for a generation run: merged into the weights, or as PEFT side paths.

    runner = StackRunner(pipe, adapters)                  # adapters: the generator's LoadedAdapters
    runner.apply_for_run(active, calls=20, size=2 * 8 * 8)  # per run: patched or side path, by measurement
    runner.apply_side(active)                             # side path now (weights back to the originals)

Invariant: the pipeline computes base + stack exactly once — each active adapter is either merged into
the weights (and its side path is off) or on the side path (and absent from the weights), never both.
Patched weights are left in place after a run, so the next run with the same stack costs nothing and a
toggle or reweight re-patches only the layers it touches; going to the side path, an empty stack, or a
weight of 0 puts the original tensors back bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.engine.generate.adapter_cache import ActiveAdapter, LoadedAdapters
from app.engine.generate.stack_mode import StackCostModel
from app.engine.generate.weight_patch import (
    Contribution,
    PatchStats,
    WeightPatcher,
    has_adapter,
    peft_layer_delta,
)

MODES = ("auto", "patch", "side")
# Generation patches by default: "auto" decides from timings, so two identical requests could land on different
# modes (patched and side-path images differ in the last bits) and a grid cell would no longer equal the same
# `styleshelf generate` bit for bit. "auto" stays available for callers that trade that for speed (previews).
DEFAULT_MODE = "patch"


@dataclass
class StackPlan:
    layers: dict[Any, list[Contribution]] = field(default_factory=dict)  # base layer -> what it should hold
    side_only: set[str] = field(default_factory=set)  # adapters with a layer that cannot be patched
    unet_side_units: int = 0  # side-path work per UNet input element of the patchable adapters


@dataclass
class RunApplication:
    mode: str  # "patch" | "side"
    stats: PatchStats
    side_adapters: list[str]  # on the side path this run (all of them in side mode; DoRA & co. in patch mode)
    seconds: float  # the whole application: planning, switching, patching


class StackRunner:
    """Owns the patched state of one pipeline's weights and the measurements that pick the mode."""

    def __init__(self, pipe: Any, adapters: LoadedAdapters, *, mode: str = DEFAULT_MODE) -> None:
        self.pipe = pipe
        self.adapters = adapters
        self.mode = mode
        device = getattr(getattr(pipe, "unet", None), "device", None)
        on_cpu = device is None or device.type == "cpu"
        # Costs are compared in one unit: CPU time of this process on CPU (other programs' load does not
        # count), wall time on a GPU. Originals of a GPU model wait in RAM: no doubled VRAM.
        self.clock = time.process_time if on_cpu else time.perf_counter
        self.patcher = WeightPatcher(offload=None if on_cpu else "cpu", clock=self.clock)
        self.costs = StackCostModel()
        self.last: RunApplication | None = None
        self._side_units = 0
        self._deltas: dict[str, list[tuple[Any, bool, Any, int]]] = {}
        self._deltas_for: Any = None  # the tuner-layer table the cached deltas were read from
        self._hooks = _time_unet_calls(pipe, self)

    # ------------------------------------------------------------------------------ applying
    def apply_side(self, active: list[ActiveAdapter]) -> RunApplication:
        started = time.perf_counter()
        stats = self.patcher.restore_all()
        self.costs.observe_patch(stats.work, stats.seconds)
        self.adapters.activate(active)
        self._side_units = self.plan(active).unet_side_units if active else 0
        self.last = RunApplication("side", stats, [a.name for a in active], time.perf_counter() - started)
        return self.last

    def apply_for_run(self, active: list[ActiveAdapter], *, calls: int, size: int) -> RunApplication:
        """Apply ``active`` for a run of ``calls`` UNet calls on inputs of ``size`` elements (batch·h·w)."""
        if self.mode not in MODES:
            raise ValueError(f"stack mode must be one of {MODES}, got {self.mode!r}")
        started = time.perf_counter()
        plan = self.plan(active)
        mode = self.mode
        if mode == "auto":
            mode = self.costs.choose(
                size=size, calls=calls, side_units=plan.unet_side_units,
                patch_work=self.patcher.pending_work(plan.layers), restore_work=self.patcher.restore_work(),
            )  # fmt: skip
        if mode == "side":
            run = self.apply_side(active)
            run.seconds = time.perf_counter() - started
            return run
        side = [a for a in active if a.name in plan.side_only]
        self.adapters.activate(side)  # usually none: every side path off before the weights hold the stack
        stats = self.patcher.sync(plan.layers)
        self.costs.observe_patch(stats.work, stats.seconds)
        self._side_units = self.plan(side).unet_side_units if side else 0
        self.last = RunApplication("patch", stats, [a.name for a in side], time.perf_counter() - started)
        return self.last

    def restore(self) -> PatchStats:
        """Put every patched layer back to its original tensor (side paths unchanged)."""
        return self.patcher.restore_all()

    def close(self) -> None:
        self.restore()
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    # ------------------------------------------------------------------------------ planning
    def plan(self, active: list[ActiveAdapter]) -> StackPlan:
        """Per base layer, the contributions of ``active`` (zero strengths left out, order by name)."""
        plan = StackPlan()
        for a in sorted(active, key=lambda a: a.name):  # the sum does not depend on the stack's order
            for base, text, delta, side_cost in self._layers_of(a.name):
                strength = float(a.text_encoder_weight if text else a.weight)
                if strength == 0.0:
                    continue
                if delta is None:
                    plan.side_only.add(a.name)
                    continue
                plan.layers.setdefault(base, []).append(Contribution(a.name, strength, delta))
                plan.unet_side_units += 0 if text else side_cost
        if plan.side_only:
            plan.layers = {
                layer: kept
                for layer, contributions in plan.layers.items()
                if (kept := [c for c in contributions if c.adapter not in plan.side_only])
            }
        return plan

    def _layers_of(self, adapter: str) -> list[tuple[Any, bool, Any, int]]:
        """(base layer, is text encoder, delta or None, side cost) of every layer ``adapter`` adapts; cached
        per adapter until the set of loaded adapters changes, so a toggle never walks the whole model."""
        table = self.adapters.tuner_layers()
        if table is not self._deltas_for:
            self._deltas, self._deltas_for = {}, table  # adapters were loaded or evicted
        if adapter not in self._deltas:
            entries = []
            for component, layers in table.items():
                text = component.startswith("text_encoder")
                for layer in layers:
                    if has_adapter(layer, adapter):
                        delta = peft_layer_delta(layer, adapter)
                        cost = delta.side_cost() if delta is not None else 0
                        entries.append((layer.get_base_layer(), text, delta, cost))
            self._deltas[adapter] = entries
        return self._deltas[adapter]

    # ------------------------------------------------------------------------------ measuring
    def observe_unet_call(self, size: int, seconds: float) -> None:
        self.costs.observe_call(size, self._side_units, seconds)


def _time_unet_calls(pipe: Any, runner: StackRunner) -> list[Any]:
    """Time every UNet call (two clock reads per call) so the mode choice follows this machine."""
    unet = getattr(pipe, "unet", None)
    if unet is None or not hasattr(unet, "register_forward_pre_hook"):
        return []
    started: list[tuple[float, int]] = []
    clock = runner.clock

    def before(_module: Any, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs.get("sample")
        shape = getattr(sample, "shape", None)
        size = int(shape[0]) * int(shape[-2]) * int(shape[-1]) if shape is not None and len(shape) == 4 else 0
        started[:] = [(clock(), size)]  # one slot: a call that raised leaves nothing behind

    def after(_module: Any, _args: tuple, _kwargs: dict, _output: Any) -> None:
        if started:
            t0, size = started.pop()
            if size:
                runner.observe_unet_call(size, clock() - t0)

    return [
        unet.register_forward_pre_hook(before, with_kwargs=True),
        unet.register_forward_hook(after, with_kwargs=True),
    ]
