"""The adapters loaded into one base pipeline: an LRU, and a fast way to switch which are active.

Loading an adapter costs a file read and layer injection (~0.5–1 s on an SD1.5 UNet), so each file is
loaded once and kept; toggling or reweighting afterwards only changes per-layer scales. Too many
loaded adapters make every switch slower (PEFT walks all of them), hence a bounded LRU whose
evictions go through ``delete_adapters``.

Switching uses the same per-layer operations as diffusers' ``set_adapters`` (active adapter list and
``set_scale``), on a layer list collected once per load/evict instead of walking the whole module
tree and toggling ``requires_grad`` on every LoRA weight each time — that walk is what made a switch
cost 46–71 ms with 16 adapters on an SD1.5 UNet. Generation runs under ``no_grad``, so the skipped
``requires_grad`` bookkeeping has no effect on the image; a test checks bit-identical output against
``pipe.set_adapters``.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from app.engine.generate.identity import AdapterIdentity


@dataclass(frozen=True)
class ActiveAdapter:
    name: str  # the diffusers adapter name (AdapterIdentity.adapter_name)
    weight: float  # UNet strength
    text_encoder_weight: float  # strength of the adapter's text-encoder part (if it has one)


class LoadedAdapters:
    """Adapters resident in ``pipe``, least recently used first."""

    def __init__(self, pipe: Any, capacity: int = 16, *, fast_switch: bool = True) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.pipe = pipe
        self.capacity = capacity
        self.fast_switch = fast_switch
        self._lru: OrderedDict[str, AdapterIdentity] = OrderedDict()
        self._layers: dict[str, list[Any]] | None = None  # component -> PEFT tuner layers
        self.loads = 0
        self.evictions = 0

    # ------------------------------------------------------------------------------ residency
    def names(self) -> list[str]:
        return list(self._lru)

    def __contains__(self, name: str) -> bool:
        return name in self._lru

    def ensure(self, identities: list[AdapterIdentity], *, on_log: Callable[[str, str], None] | None = None) -> None:
        """Make every adapter in ``identities`` resident, then evict beyond capacity (never a needed one)."""
        needed = {ident.adapter_name for ident in identities}
        for ident in identities:
            name = ident.adapter_name
            if name in self._lru:
                self._lru.move_to_end(name)
                continue
            # Free room first: peak memory stays at capacity, and PEFT never sees more adapters than allowed.
            self._evict(keep=needed, target=self.capacity - 1)
            if on_log:
                on_log(f"loading adapter {ident.title}", "info")
            with warnings.catch_warnings():
                # PEFT warns on every adapter after the first; several adapters is exactly what we want.
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                messages = load_adapter(self.pipe, ident.path, name)
            for message in messages:
                if on_log:
                    on_log(f"{ident.title}: {message}", "warning")
            self._lru[name] = ident
            self._layers = None
            self.loads += 1
        self._evict(keep=needed, target=self.capacity)

    def _evict(self, *, keep: set[str], target: int) -> None:
        for name in list(self._lru):
            if len(self._lru) <= target:
                break
            if name in keep:
                continue
            self.pipe.delete_adapters(name)
            del self._lru[name]
            self._layers = None
            self.evictions += 1

    def forget_path(self, path: str) -> list[str]:
        """Unload every adapter that was read from ``path`` (the file changed or vanished on a shared folder),
        so nothing of the old weights stays resident; returns the adapter names dropped."""
        from pathlib import Path

        target = Path(path).resolve()
        names = [n for n, ident in self._lru.items() if Path(ident.path).resolve() == target]
        if names:
            self.pipe.delete_adapters(names)
            for n in names:
                del self._lru[n]
            self._layers = None
        return names

    def clear(self) -> None:
        if self._lru:
            self.pipe.delete_adapters(list(self._lru))
        self._lru.clear()
        self._layers = None

    # ------------------------------------------------------------------------------ switching
    def activate(self, active: list[ActiveAdapter]) -> None:
        """Make exactly ``active`` (in this order, with these weights) change the output; nothing else."""
        if not self._lru:
            return  # nothing injected: the pipeline is the plain base
        missing = [a.name for a in active if a.name not in self._lru]
        if missing:
            raise KeyError(f"not loaded: {missing}")
        if self.fast_switch and self._fast_path_available():
            self._activate_fast(active)
        else:
            self._activate_diffusers(active)

    def _activate_diffusers(self, active: list[ActiveAdapter]) -> None:
        if not active:
            self.pipe.disable_lora()
            return
        self.pipe.enable_lora()
        present = self.pipe.get_list_adapters()
        weights = []
        for a in active:
            # Only name components that hold the adapter: diffusers warns about the others.
            weights.append(
                {
                    comp: (a.text_encoder_weight if comp.startswith("text_encoder") else a.weight)
                    for comp, names in present.items()
                    if a.name in names
                }
            )
        self.pipe.set_adapters([a.name for a in active], weights)

    def tuner_layers(self) -> dict[str, list[Any]]:
        """PEFT tuner layers per component; a new table after every load or eviction."""
        return self._tuner_layers()

    def _tuner_layers(self) -> dict[str, list[Any]]:
        if self._layers is None:
            from peft.tuners.tuners_utils import BaseTunerLayer

            layers: dict[str, list[Any]] = {}
            for comp in getattr(self.pipe, "_lora_loadable_modules", ("unet", "text_encoder")):
                model = getattr(self.pipe, comp, None)
                if model is not None:
                    layers[comp] = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
            self._layers = layers
        return self._layers

    def _fast_path_available(self) -> bool:
        for layers in self._tuner_layers().values():
            for layer in layers[:1]:
                if not all(hasattr(layer, a) for a in ("_active_adapter", "_disable_adapters", "set_scale")):
                    return False
        return True

    def _activate_fast(self, active: list[ActiveAdapter]) -> None:
        names = [a.name for a in active]
        for comp, layers in self._tuner_layers().items():
            text = comp.startswith("text_encoder")
            for layer in layers:
                if not names:
                    layer._disable_adapters = True
                    continue
                layer._disable_adapters = False
                layer._active_adapter = list(names)
                for a in active:
                    layer.set_scale(a.name, a.text_encoder_weight if text else a.weight)


def load_adapter(pipe: Any, path: str, name: str) -> list[str]:
    """Load one adapter file into ``pipe`` as ``name`` through the shelf's loader (every key layout); return
    its warnings (unmatched modules, family mismatch); AdapterError when refused."""
    from app.engine.adapters import load_into_pipeline

    report = load_into_pipeline(pipe, path, name)
    return [str(w) for w in report.warnings]
