"""Add a stack's merged delta into the base weights for a run; put the exact originals back afterwards.

An adapter applied as a side path (PEFT's ``base(x) + B(A(x))·s``) costs two extra small matmuls per
layer per step per adapter: on small models that tripled the time per image with three styles. Adding
Σ wᵢ·sᵢ·Uᵢ·Dᵢ into the layer's weight once per run costs one matmul per layer and makes every step run
at the base model's speed, as ComfyUI does.

Why originals are kept rather than the delta subtracted again: ``(W + Δ) − Δ`` is not ``W`` in floating
point (diffusers' fuse→unfuse is not bit-exact), and "weight 0 / empty stack gives the base image bit for
bit" is a promise. So the first time a layer is patched its original tensor is set aside (once per layer,
not per adapter) and the layer gets a new tensor, original + Σ (one pass over memory); every re-patch
starts from the original; a restore hands the layer its original tensor back (no copy at all) and frees
the patched one. With ``offload`` (a GPU model) the original is copied to RAM instead and copied back.

What a format contributes is one delta per layer (``LayerDelta``): LoRA gives low-rank factors (several
adapters on one layer merge into ONE matmul of the concatenated factors); LoHa/LoKr/full-difference
adapters give a dense tensor (``DenseDelta``). ``peft_layer_delta`` reads them off loaded PEFT layers;
a format loaded some other way only has to build ``LayerDelta`` objects for ``WeightPatcher.sync``.

A toggle can be prepared ahead of its run (``stage``, on a background thread): the changed layers' new
tensors are computed from the originals into fresh tensors, never into a live weight, and ``sync`` later
hands them to their layers (a pointer swap) when their stack still matches. Staged or computed in ``sync``,
a layer's new tensor comes from the same function on the same inputs: the same bits either way.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


class LayerDelta(Protocol):
    """One adapter's change to one weight at strength 1 (already including its alpha/rank scale)."""

    def low_rank(self) -> tuple[Any, Any, float] | None:
        """``(up [out, r], down [r, in·kh·kw], scale)`` with Δ = scale·up·down, or None if not low-rank."""

    def dense(self) -> Any:
        """Δ as a tensor shaped like the weight (every format can give this)."""

    def side_cost(self) -> int:
        """Multiply-adds per input token when applied as a side path (for choosing patch vs side path)."""


@dataclass(frozen=True)
class LowRankDelta:
    """Δ = scale · up @ down (LoRA; ``down`` flattened over input channels and kernel)."""

    up: Any
    down: Any
    scale: float
    weight_shape: tuple[int, ...]

    def low_rank(self) -> tuple[Any, Any, float]:
        return self.up, self.down, self.scale

    def dense(self) -> Any:
        return ((self.up.float() @ self.down.float()) * self.scale).reshape(self.weight_shape)

    def side_cost(self) -> int:
        return int(self.up.shape[1]) * (int(self.up.shape[0]) + int(self.down.shape[1]))


@dataclass(frozen=True)
class DenseDelta:
    """Δ computed on demand by ``make()`` (LoHa, LoKr, full-difference adapters, PEFT layers we cannot factor)."""

    make: Callable[[], Any]
    numel: int

    def low_rank(self) -> None:
        return None

    def dense(self) -> Any:
        return self.make()

    def side_cost(self) -> int:
        return self.numel


@dataclass(frozen=True)
class Contribution:
    adapter: str  # the loaded adapter's name: with the strength, identifies what a patched layer holds
    strength: float
    delta: LayerDelta


@dataclass
class PatchStats:
    patched: int = 0  # layers (re)written with a new merged delta
    restored: int = 0  # layers put back to their originals
    kept: int = 0  # layers already holding exactly the wanted delta: untouched
    prepared: int = 0  # of ``patched``, layers whose tensor was computed ahead by ``stage`` (only swapped in)
    seconds: float = 0.0
    work: float = 0.0  # the cost units of ``patch_work`` actually done


def patch_work(weight: Any, contributions: list[Contribution] | None) -> float:
    """Cost units of (re)writing one layer: a copy, plus one multiply-add per element per merged rank."""
    numel = float(weight.numel())
    if not contributions:
        return numel  # a restore is one copy
    rank = 0
    for c in contributions:
        lr = c.delta.low_rank()
        rank += int(lr[0].shape[1]) if lr is not None else 2  # a dense delta: make + add
    return numel * (rank + 2)


@dataclass
class WeightPatcher:
    """Keeps layers' weights equal to original + the wanted merged delta, rewriting only what changed.

    ``offload`` keeps the originals on another device (e.g. "cpu" for a CUDA model: VRAM stays free).
    """

    offload: str | None = None
    clock: Callable[[], float] = time.perf_counter  # process_time on CPU: robust on a shared machine
    _originals: dict[Any, Any] = field(default_factory=dict)  # layer module -> original weight copy
    _applied: dict[Any, tuple] = field(default_factory=dict)  # layer module -> (adapter, strength) signature
    _staged: dict[Any, tuple[list[Contribution], Any]] = field(default_factory=dict)  # layer -> (for, tensor)
    # Held while layers are rewritten or staged: ``stage`` runs on another thread than ``sync``.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def patched_layers(self) -> int:
        return len(self._applied)

    @property
    def original_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._originals.values())

    def restore_work(self) -> float:
        """What putting every patched layer back would cost, in ``patch_work`` units."""
        return sum(self._restore_work(layer) for layer in self._applied)

    @property
    def staged_layers(self) -> int:
        return len(self._staged)

    def pending_work(self, plan: dict[Any, list[Contribution]]) -> float:
        """What ``sync(plan)`` would cost, in ``patch_work`` units (0 when nothing changed or all was staged)."""
        work = sum(self._restore_work(layer) for layer in self._applied if layer not in plan)
        for layer, contributions in plan.items():
            if self._applied.get(layer) != _signature(contributions) and not self._staged_for(layer, contributions):
                work += patch_work(layer.weight, contributions)
        return work

    def stage(self, plan: dict[Any, list[Contribution]], stop: Callable[[], bool] = lambda: False) -> int:
        """Compute ahead, into fresh tensors, what ``sync(plan)`` would write; returns the layers staged.

        Never writes a weight a run may be reading: each new tensor waits in ``_staged`` until ``sync`` swaps
        it in. Staged tensors for another stack are dropped first (memory). ``stop()`` is asked between
        layers (a newer toggle, or a run that is starting). Not for ``offload`` (a GPU patches in milliseconds
        and a second copy of the layers would cost VRAM).
        """
        import torch

        if self.offload:
            return 0
        with self._lock:
            for layer in [lay for lay, (want, _t) in self._staged.items() if not _same(want, plan.get(lay))]:
                del self._staged[layer]
        staged = 0
        for layer, contributions in plan.items():
            if stop():
                break
            if any(c.delta.low_rank() is None for c in contributions):
                continue  # a dense delta's ``make`` may set the adapter's side-path scale: only between runs
            with self._lock, torch.no_grad():
                if self._applied.get(layer) == _signature(contributions) or self._staged_for(layer, contributions):
                    continue
                original = self._originals.get(layer, layer.weight.data)  # unpatched: the live tensor is it
                self._staged[layer] = (list(contributions), self._merge(layer, contributions, original, fresh=True))
                staged += 1
        return staged

    def drop_staged(self) -> None:
        with self._lock:
            self._staged.clear()

    def _staged_for(self, layer: Any, contributions: list[Contribution]) -> bool:
        entry = self._staged.get(layer)
        return entry is not None and _same(entry[0], contributions)

    def sync(self, plan: dict[Any, list[Contribution]]) -> PatchStats:
        """Make each layer in ``plan`` hold original + Σ strength·Δ, and every other patched layer its original."""
        import torch

        stats = PatchStats()
        started = self.clock()
        with self._lock, torch.no_grad():
            for layer in [lay for lay in self._applied if lay not in plan]:
                stats.work += self._restore_work(layer)
                self._restore(layer)
                stats.restored += 1
            for layer, contributions in plan.items():
                signature = _signature(contributions)
                if self._applied.get(layer) == signature:
                    stats.kept += 1
                    continue
                staged = self._staged.pop(layer, None)
                if staged is not None and _same(staged[0], contributions):
                    self._originals.setdefault(layer, layer.weight.data)
                    layer.weight.data = staged[1]  # computed ahead from the original: only the swap is left
                    stats.prepared += 1
                else:
                    stats.work += patch_work(layer.weight, contributions)
                    self._patch(layer, contributions)
                self._applied[layer] = signature
                stats.patched += 1
            self._staged.clear()  # anything left was staged for another stack
        stats.seconds = self.clock() - started
        return stats

    def restore_all(self) -> PatchStats:
        return self.sync({})

    def _restore_work(self, layer: Any) -> float:
        return patch_work(layer.weight, None) if self.offload else 0.0  # handing a tensor back costs nothing

    def _restore(self, layer: Any) -> None:
        original = self._originals.pop(layer)
        if self.offload:
            layer.weight.data.copy_(original)
        else:
            layer.weight.data = original  # the very tensor the layer had: bit for bit by construction
        del self._applied[layer]

    def _patch(self, layer: Any, contributions: list[Contribution]) -> None:
        weight = layer.weight.data
        original = self._originals.get(layer)
        if original is None:
            original = weight.to(self.offload, copy=True) if self.offload else weight
            self._originals[layer] = original
        merged = self._merge(layer, contributions, original, fresh=False)
        if merged.data_ptr() == weight.data_ptr():
            return
        if self.offload:
            weight.copy_(merged.view(weight.shape))
        else:
            layer.weight.data = merged

    def _merge(self, layer: Any, contributions: list[Contribution], original: Any, *, fresh: bool) -> Any:
        """original + Σ strength·Δ as the layer's new weight tensor (shape, dtype, device of the live one).

        ``fresh``: always a new tensor (staging); otherwise a float32 layer that already holds a patched
        tensor of its own is written in place. Both write through the same ``addmm(out=)``: the same bits.
        """
        import torch

        weight = layer.weight.data
        ups, downs, denses = [], [], []
        for c in contributions:
            low = c.delta.low_rank()
            if low is None:
                denses.append((c.strength, c.delta))
                continue
            up, down, scale = low
            ups.append(_float32(up) * (c.strength * scale))
            downs.append(_float32(down))
        rows = weight.shape[0]
        # Every patch starts from the original (same stack, same bits). Half-precision weights are merged in
        # float32 and rounded once, as PEFT's merge does on CPU.
        exact = weight.dtype == torch.float32
        start = original.to(weight.device, torch.float32).view(rows, -1)
        if exact and not fresh and weight.data_ptr() != original.data_ptr():
            merged = weight.view(rows, -1)  # already a patched tensor (or the offload case): write into it
        else:
            merged = torch.empty_like(start)
        if ups:
            # One matmul for all adapters on this layer, [s₁U₁ | s₂U₂ | …] @ [D₁; D₂; …] = Σ sᵢ·Uᵢ·Dᵢ, added
            # to the original while the result is written (one pass over memory).
            up, down = (ups[0], downs[0]) if len(ups) == 1 else (torch.cat(ups, dim=1), torch.cat(downs, dim=0))
            torch.addmm(start, up.to(merged.device), down.to(merged.device), out=merged)
        else:
            merged.copy_(start)
        for strength, delta in denses:
            merged.add_(delta.dense().to(merged).reshape(merged.shape), alpha=strength)
        if merged.data_ptr() == weight.data_ptr() or self.offload:
            return merged
        return merged.view(weight.shape).to(weight.dtype)


def _float32(tensor: Any) -> Any:
    import torch

    return tensor if tensor.dtype == torch.float32 else tensor.float()


def _signature(contributions: list[Contribution]) -> tuple:
    return tuple((c.adapter, c.strength) for c in contributions)


def _same(staged: list[Contribution], wanted: list[Contribution] | None) -> bool:
    """Whether a tensor staged for ``staged`` is what ``wanted`` asks for: same names, strengths and the
    very same delta objects (an adapter reloaded under its old name brings new ones)."""
    return (
        wanted is not None
        and len(staged) == len(wanted)
        and all(
            a.adapter == b.adapter and a.strength == b.strength and a.delta is b.delta for a, b in zip(staged, wanted)
        )
    )


# ------------------------------------------------------------------------------ deltas from PEFT layers
def has_adapter(layer: Any, adapter: str) -> bool:
    return adapter in (getattr(layer, "lora_A", None) or {}) or adapter in (getattr(layer, "scaling", None) or {})


def peft_layer_delta(layer: Any, adapter: str) -> LayerDelta | None:
    """The delta ``adapter`` adds to this PEFT tuner layer at strength 1; None if it is not a plain addition.

    Plain LoRA on Linear/Conv2d gives low-rank factors. Other PEFT tuners with ``get_delta_weight``
    (LoHa, LoKr) give a dense delta. DoRA and other LoRA variants rescale the weight itself rather than
    add to it, and biased LoRA changes the bias too: those stay on the side path (None).
    """
    import torch

    base = layer.get_base_layer()
    weight = getattr(base, "weight", None)
    if weight is None or adapter in (getattr(layer, "lora_variant", None) or {}):
        return None
    if (getattr(layer, "use_dora", None) or {}).get(adapter, False):
        return None
    lora_a, lora_b = getattr(layer, "lora_A", None), getattr(layer, "lora_B", None)
    if lora_a is not None and lora_b is not None and adapter in lora_a:
        a, b = lora_a[adapter], lora_b[adapter]
        if getattr(b, "bias", None) is not None or getattr(layer, "fan_in_fan_out", False):
            return None
        if not isinstance(base, (torch.nn.Linear, torch.nn.Conv2d)) or getattr(base, "groups", 1) != 1:
            return None
        up, down = b.weight, a.weight
        if tuple(down.shape[1:]) != tuple(weight.shape[1:]) or any(k != 1 for k in up.shape[2:]):
            return None
        rank = int(layer.r[adapter])
        root = math.sqrt(rank) if (getattr(layer, "use_rslora", None) or {}).get(adapter, False) else rank
        return LowRankDelta(
            up=up.reshape(up.shape[0], -1), down=down.reshape(down.shape[0], -1),
            scale=float(layer.lora_alpha[adapter]) / root, weight_shape=tuple(weight.shape),
        )  # fmt: skip
    if hasattr(layer, "get_delta_weight") and hasattr(layer, "set_scale"):

        def make(layer: Any = layer, adapter: str = adapter) -> Any:
            layer.set_scale(adapter, 1.0)  # strength 1; the side path sets its own scale when it is next used
            return layer.get_delta_weight(adapter)

        return DenseDelta(make=make, numel=int(weight.numel()))
    return None
