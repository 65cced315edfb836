"""Applies the active stack for a generation run: merged into the weights, or as PEFT side paths.

    runner = StackRunner(pipe, adapters)                  # adapters: the generator's LoadedAdapters
    runner.apply_for_run(active, calls=20, size=2 * 8 * 8)  # per run: patched or side path, by measurement
    runner.apply_side(active)                             # side path now (weights back to the originals)
    runner.prepare(active)                                # a toggle: returns at once, re-patches in the background

Invariant: the pipeline computes base + stack exactly once — each active adapter is either merged into
the weights (and its side path is off) or on the side path (and absent from the weights), never both.
Patched weights are left in place after a run, so the next run with the same stack costs nothing and a
toggle or reweight re-patches only the layers it touches; going to the side path, an empty stack, or a
weight of 0 puts the original tensors back bit for bit.

A toggle or reweight costs its re-patch (~0.2 s CPU for one style on an SD1.5 UNet), too long to wait
for when the user clicks. ``prepare`` records the stack the next run will want and returns at once; a
background thread computes the changed layers' new tensors from the originals (never touching a live
weight, so a run in progress is unaffected) and the next run only swaps them in. A run that starts before
the thread is done stops it after its current layer and computes the rest itself. Either way each layer's
tensor comes from the same function of the same inputs, so the image is the same bit for bit.
"""

from __future__ import annotations

import threading
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
        # Held while the model's adapters or weights change (loading, patching); the preparing thread plans
        # under it so it never walks a model that is being injected into.
        self.lock = threading.RLock()
        self._wake = threading.Condition()
        self._request: list[ActiveAdapter] | None = None  # the newest stack to prepare, not yet picked up
        self._preparer: threading.Thread | None = None
        self._halt = False  # a run is starting: the preparing thread stops after its current layer
        self.prepared_at: float | None = None  # perf_counter when the last preparation finished (benchmarks)

    # ------------------------------------------------------------------------------ preparing a toggle
    def prepare(self, active: list[ActiveAdapter]) -> None:
        """Start re-patching, in the background, what the next run with ``active`` will need; returns at once.

        Every adapter of ``active`` must already be loaded. Only layers whose stack changes are computed; a
        newer ``prepare`` supersedes this one (layers already computed for both are kept).
        """
        if self.mode == "side" or self.patcher.offload:
            return  # nothing would be patched (side), or patching takes milliseconds anyway (GPU)
        with self._wake:
            self._request = list(active)
            self.prepared_at = None
            if self._preparer is None:
                self._preparer = threading.Thread(target=self._prepare_loop, name="stack-prepare", daemon=True)
                self._preparer.start()

    def wait_prepared(self, timeout: float | None = None) -> bool:
        """Block until no preparation is pending or running (tests, benchmarks); False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: self._preparer is None, timeout)

    def _prepare_loop(self) -> None:
        while True:
            with self._wake:
                if self._request is None or self._halt:  # a request that came in while halting waits for
                    self._preparer = None  # the run to be applied (``_halt_preparing`` starts it again)
                    self._wake.notify_all()
                    return
                active, self._request = self._request, None
            try:
                layers = self._plan_when_free(active)
                if layers is not None:
                    self.patcher.stage(layers, stop=lambda: self._halt or self._request is not None)
            except Exception:  # noqa: BLE001 - only a head start: the run computes whatever is missing itself
                self.patcher.drop_staged()
            if self._request is None and not self._halt:
                self.prepared_at = time.perf_counter()

    def _plan_when_free(self, active: list[ActiveAdapter]) -> dict[Any, list[Contribution]] | None:
        # Polls rather than blocks: whoever holds the lock (a run starting, adapters loading) may be waiting
        # for this thread to halt.
        while not self.lock.acquire(timeout=0.02):
            if self._halt:
                return None
        try:
            return self.plan(active).layers
        finally:
            self.lock.release()

    def _halt_preparing(self) -> None:
        """Stop the preparing thread after its current layer and wait for it; what it staged stays usable."""
        with self._wake:
            if self._preparer is None:
                return
            self._halt, self._request = True, None
            self._wake.wait_for(lambda: self._preparer is None)
            self._halt = False
            if self._request is not None:  # a toggle made meanwhile: prepared once the caller releases the lock
                self._preparer = threading.Thread(target=self._prepare_loop, name="stack-prepare", daemon=True)
                self._preparer.start()

    # ------------------------------------------------------------------------------ applying
    def apply_side(self, active: list[ActiveAdapter]) -> RunApplication:
        with self.lock:
            self._halt_preparing()
            self.patcher.drop_staged()
            return self._apply_side(active)

    def _apply_side(self, active: list[ActiveAdapter]) -> RunApplication:
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
        with self.lock:
            self._halt_preparing()
            return self._apply_for_run(active, calls=calls, size=size)

    def _apply_for_run(self, active: list[ActiveAdapter], *, calls: int, size: int) -> RunApplication:
        started = time.perf_counter()
        plan = self.plan(active)
        mode = self.mode
        if mode == "auto":
            mode = self.costs.choose(
                size=size, calls=calls, side_units=plan.unet_side_units,
                patch_work=self.patcher.pending_work(plan.layers), restore_work=self.patcher.restore_work(),
            )  # fmt: skip
        if mode == "side":
            self.patcher.drop_staged()
            run = self._apply_side(active)
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
        with self.lock:
            self._halt_preparing()
            self.patcher.drop_staged()
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
