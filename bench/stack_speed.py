"""Stacked styles at the base model's speed: per-image cost of a 3-style stack, patched vs side path.

Runs alternate in one process (cases interleaved each round, so machine load drifts hit all alike) and
ratios come from process CPU time (with one torch thread it does not count time other programs held the
cores; wall time is printed beside it). Goals (issue 14): 3-style stack ≤ 1.05× no stack on the demo model
and on the SD1.5-shaped UNet; patch + restore of 3 rank-16 styles on SD1.5 shape ≤ 0.5 s; toggle/reweight
with 16 loaded ≤ 30 ms; first image after a toggle ≤ 1.1× a steady one; same seed + stack → same image
bit for bit across alternating runs. A toggle is measured as the UI makes it: ``Generator.prepare_stack``
(returns at once; a background thread re-patches the changed layers), then the next image either at once
(it halts the thread and computes the rest itself) or a click later (it only swaps the tensors in).

    .venv/bin/python bench/stack_speed.py                       # demo model + SD1.5 shape, 1 thread
    .venv/bin/python bench/stack_speed.py --skip-sd15 --rounds 5
    .venv/bin/python bench/stack_speed.py --sd15-steps 4 --size 256 --threads 2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def med(values) -> float:
    return statistics.median(values)


def row(label: str, wall: list[float], cpu: list[float], base_cpu: float | None = None, goal: str = "") -> None:
    ratio = f"{med(cpu) / base_cpu:6.3f}×" if base_cpu else "       "
    print(f"  {label:34s} wall {med(wall) * 1000:9.1f} ms   cpu {med(cpu) * 1000:9.1f} ms   {ratio}  {goal}")


# ------------------------------------------------------------------------------ demo model, whole images
def demo_section(args) -> None:
    from app.engine.generate import GenerateConfig, Generator
    from app.engine.paths import BUNDLED_STYLES_DIR, DEMO_MODEL_DIR
    from app.engine.shelf.stack import StackEntry

    styles = sorted(BUNDLED_STYLES_DIR.glob("*/*.safetensors"))[:3]
    print(f"\n== demo model: {args.demo_steps} steps, DPM++ 2M, CFG 7, 64 px, styles "
          f"{', '.join(p.stem for p in styles)} at 0.5, median of {args.rounds}")  # fmt: skip
    tmp = tempfile.TemporaryDirectory(prefix="stack-speed-")
    gen = Generator(DEMO_MODEL_DIR)
    pristine = Generator(DEMO_MODEL_DIR)  # no adapter ever loaded: the plain base model
    three = [StackEntry(path=str(p), weight=0.5) for p in styles]
    two = [StackEntry(path=str(p), weight=0.5, enabled=i != 2) for i, p in enumerate(styles)]

    def image(g, stack, mode: str, steps: int = args.demo_steps, seed: int = 1):
        g.stacks.mode = mode
        cfg = GenerateConfig(prompt="a red circle on a blue background", steps=steps, sampler="DPM++ 2M",
                             guidance=7.0, seed=seed, width=64, height=64, out_dir=tmp.name, file_stem="img",
                             preview_every=0, stack=list(stack))  # fmt: skip
        return g.generate(cfg)[0].path

    for g in (gen, pristine):
        image(g, [], "auto")  # warm-up
    image(gen, three, "side")
    cases = {k: ([], []) for k in ("plain base", "no stack", "3 styles patched", "3 styles side path",
                                   "steady (same stack)", "after toggle, not prepared", "after toggle, at once",
                                   "after toggle, a click later")}  # fmt: skip
    toggle_call, toggle_ready, toggle_patch = [], [], []
    for _ in range(args.rounds):
        for label, fn in (
            ("plain base", lambda: image(pristine, [], "auto")),
            ("no stack", lambda: image(gen, [], "patch")),
            ("3 styles side path", lambda: image(gen, three, "side")),
            ("3 styles patched", lambda: image(gen, three, "patch")),  # first after side: full patch
            ("steady (same stack)", lambda: image(gen, three, "patch")),
        ):
            w, c = timed(fn)
            cases[label][0].append(w)
            cases[label][1].append(c)
        for label in ("after toggle, not prepared", "after toggle, at once", "after toggle, a click later"):
            image(gen, two, "patch")  # toggle the third style off ...
            if label != "after toggle, not prepared":  # ... and on, as the UI does on the click
                t0 = time.perf_counter()
                gen.prepare_stack(three)
                toggle_call.append(time.perf_counter() - t0)
                if label == "after toggle, a click later":
                    gen.stacks.wait_prepared()
                    toggle_ready.append(gen.stacks.prepared_at - t0)
            w, c = timed(lambda: image(gen, three, "patch"))  # CPU time counts the preparing thread too
            cases[label][0].append(w)
            cases[label][1].append(c)
            if label == "after toggle, not prepared":
                toggle_patch.append(gen.stacks.last.stats.seconds)
    base = med(cases["no stack"][1])
    steady = med(cases["steady (same stack)"][1])
    for label, (w, c) in cases.items():
        goal = {"3 styles patched": "goal ≤ 1.05×"}.get(label, "")
        if label.startswith("after toggle"):
            goal = f"{med(c) / steady:.3f}× steady (goal ≤ 1.1×)"
        row(label, w, c, base, goal)
    print(f"  toggle, {len(gen.adapters.names())} loaded: "
          f"prepare_stack returns in {med(toggle_call) * 1000:.1f} ms wall "
          f"(goal ≤ 30 ms); weights ready {med(toggle_ready) * 1000:.1f} ms wall after the click; re-patch "
          f"at run start when not prepared {med(toggle_patch) * 1000:.1f} ms cpu")  # fmt: skip
    print(f"  auto mode picks: {auto_choice(gen, lambda m: image(gen, three, m))}")
    determinism(gen, three, two, image, args.determinism)
    tmp.cleanup()


def auto_choice(gen, run) -> str:
    gen.stacks.restore()
    run("auto")
    return gen.stacks.last.mode


def determinism(gen, three, two, image, runs: int) -> None:
    """Alternate stacks and modes for ``runs`` images (4 steps); each (stack, mode) must repeat bit for bit,
    whether the stack was patched at the run's start (from other stacks, incrementally) or prepared ahead."""
    from PIL import Image

    seen: dict[tuple[str, str], set[str]] = {}
    kinds = [("3 styles", three, "patch", False), ("2 styles", two, "patch", True),
             ("3 styles", three, "side", False), ("none", [], "patch", False),
             ("3 styles", three, "patch", True), ("2 styles", two, "patch", False)]  # fmt: skip
    for i in range(runs):
        name, stack, mode, prepared = kinds[i % len(kinds)]
        if prepared:
            gen.stacks.mode = mode
            gen.prepare_stack(stack)
            gen.stacks.wait_prepared()
        with Image.open(image(gen, stack, mode, steps=4, seed=5)) as im:
            digest = hashlib.sha256(im.tobytes()).hexdigest()
        seen.setdefault((name, mode), set()).add(digest)
    same = all(len(d) == 1 for d in seen.values())
    print(
        f"  determinism: {runs} alternating runs (some prepared ahead) over {len(seen)} (stack, mode) kinds: "
        f"{'every kind bit-identical' if same else 'DIFFERENCES: ' + str({k: len(v) for k, v in seen.items()})}"
    )


# ------------------------------------------------------------------------------ SD1.5-shaped UNet
def sd15_section(args) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from shelf_switch import build_pipe, write_adapters

    from app.engine.generate import Generator
    from app.engine.generate.adapter_cache import ActiveAdapter
    from app.engine.generate.identity import adapter_identity
    from app.engine.shelf.stack import StackEntry

    print(f"\n== SD1.5-shaped UNet (random weights), {args.size} px, {args.sd15_steps} UNet calls per image "
          f"(batch 2 = CFG), rank 16 on attention, median of {args.rounds}")  # fmt: skip
    pipe = build_pipe("cpu", torch.float32)
    tmp = tempfile.TemporaryDirectory(prefix="stack-speed-sd15-")
    paths = write_adapters(pipe.unet, Path(tmp.name), 16, 16)
    gen = Generator(pipe, max_loaded_adapters=16)
    for p in paths:
        gen.apply_stack([StackEntry(path=str(p))])  # all 16 resident
    names = [adapter_identity(p).adapter_name for p in paths]
    three = [ActiveAdapter(n, 0.6, 0.6) for n in names[:3]]
    side = args.size // 8
    latents = torch.randn(2, 4, side, side)
    context = torch.randn(2, 77, 768)
    size = 2 * side * side

    def apply(active, mode):
        gen.stacks.mode = mode
        gen.stacks.apply_for_run(active, calls=args.sd15_steps, size=size)

    def sample():
        with torch.no_grad():
            for t in range(args.sd15_steps):
                pipe.unet(latents, torch.tensor(900 - 40 * t), encoder_hidden_states=context)

    apply([], "patch")
    sample()  # warm-up
    cases = {k: ([], []) for k in ("no stack", "3 styles patched", "3 styles side path")}
    patch, restore = ([], []), ([], [])  # (wall, cpu) each
    for _ in range(args.rounds):
        for label, active, mode in (("no stack", [], "patch"), ("3 styles side path", three, "side"),
                                    ("3 styles patched", three, "patch")):  # fmt: skip
            if label == "3 styles patched":  # from the original weights: every layer of the 3 styles
                for series, value in zip(patch, timed(lambda active=active, mode=mode: apply(active, mode))):
                    series.append(value)
            else:
                apply(active, mode)
            w, c = timed(sample)
            cases[label][0].append(w)
            cases[label][1].append(c)
        memory, layers = gen.stacks.patcher.original_bytes, gen.stacks.patcher.patched_layers
        for series, value in zip(restore, timed(gen.stacks.restore)):
            series.append(value)
    base = med(cases["no stack"][1])
    for label, (w, c) in cases.items():
        row(label, w, c, base, "goal ≤ 1.05×" if label == "3 styles patched" else "")
    print(f"  patch 3 rank-16 styles: cpu {med(patch[1]) * 1000:.0f} ms + restore {med(restore[1]) * 1000:.0f} ms = "
          f"{(med(patch[1]) + med(restore[1])) * 1000:.0f} ms (goal ≤ 500 ms; wall {med(patch[0]) * 1000:.0f} + "
          f"{med(restore[0]) * 1000:.0f} ms); one UNet call {base / args.sd15_steps * 1000:.0f} ms cpu")  # fmt: skip
    print(f"  originals set aside while patched: {memory / 2**20:.0f} MiB ({layers} layers, once each)")

    # Toggle / reweight with 16 loaded. Not prepared: the next run re-patches the changed layers at its start.
    # Prepared (what the UI does on the click): prepare_stack returns at once, a background thread re-patches.
    apply(three, "patch")

    def entries(active):
        return [StackEntry(path=str(paths[names.index(a.name)]), weight=a.weight) for a in active]

    variants = [three[:2], three, [*three[:2], ActiveAdapter(names[2], 0.9, 0.9)], three]
    apply_sync, repatch, reweight, call, ready, swap, side_switch = [], [], [], [], [], [], []
    for i in range(args.rounds * 4):
        active = variants[i % 4]
        apply_sync.append(timed(lambda active=active: apply(active, "patch"))[1])
        repatch.append(gen.stacks.last.stats.seconds)  # CPU seconds (the runner's clock on CPU)
        if i % 4 == 2:
            reweight.append(gen.stacks.last.stats.seconds)  # one style reweighted: its layers only
        t = time.perf_counter()
        gen.stacks.adapters.activate(active)  # the side path's switch alone, for comparison
        side_switch.append(time.perf_counter() - t)
        gen.stacks.adapters.activate([])
        apply(variants[(i + 3) % 4], "patch")  # back to the previous stack, then the same toggle, prepared
        t = time.perf_counter()
        gen.prepare_stack(entries(active))
        call.append(time.perf_counter() - t)
        gen.stacks.wait_prepared()
        ready.append(gen.stacks.prepared_at - t)
        swap.append(timed(lambda active=active: apply(active, "patch"))[1])
        assert gen.stacks.last.stats.prepared == gen.stacks.last.stats.patched
    step = base / args.sd15_steps
    print(f"  toggle/reweight one style, 16 loaded: prepare_stack returns in {med(call) * 1000:.1f} ms wall "
          f"(goal ≤ 30 ms); weights ready {med(ready) * 1000:.0f} ms wall later (background); the run then "
          f"swaps them in: {med(swap) * 1000:.1f} ms cpu")  # fmt: skip
    print(f"  not prepared: {med(apply_sync) * 1000:.0f} ms cpu at the run's start, of which re-patch "
          f"{med(repatch) * 1000:.0f} ms; one style reweighted {med(reweight) * 1000:.0f} ms vs full patch of 3 "
          f"{med(patch[1]) * 1000:.0f} ms (every style here adapts all 128 attention layers); side-path switch "
          f"(wall) {med(side_switch) * 1000:.1f} ms")  # fmt: skip

    # First image after a toggle vs a steady one, measured: Generate pressed at once (the run halts the
    # background thread and computes the rest itself; process CPU counts both threads) or a click later.
    firsts = {"steady": ([], []), "after toggle, at once": ([], []), "after toggle, a click later": ([], []),
              "after toggle, not prepared": ([], [])}  # fmt: skip
    before = {label: [] for label in firsts}  # CPU from the toggle until sampling can start (both threads)
    for _ in range(args.rounds):
        for label in firsts:
            apply(three[:2], "patch")
            if label == "steady":
                apply(three, "patch")
            elif label == "after toggle, a click later":
                gen.prepare_stack(entries(three))
                gen.stacks.wait_prepared()
            c0 = time.process_time()

            def run(label=label, c0=c0):
                if label == "after toggle, at once":
                    gen.prepare_stack(entries(three))  # Generate pressed right after the click
                apply(three, "patch")
                before[label].append(time.process_time() - c0)
                sample()

            w, c = timed(run)
            firsts[label][0].append(w)
            firsts[label][1].append(c)
    steady = med(firsts["steady"][1])
    for label, (w, c) in firsts.items():
        row(f"{args.sd15_steps} calls, {label}", w, c, steady, "goal ≤ 1.1× steady" if label != "steady" else "")
    extra = {label: med(v) - med(before["steady"]) for label, v in before.items()}
    print(
        "  CPU from the toggle until sampling starts, over a steady run's: "
        + ", ".join(
            f"{label.removeprefix('after toggle, ')} {v * 1000:+.0f} ms"
            for label, v in extra.items()
            if label != "steady"
        )
    )
    for steps in (args.sd15_steps, 20):
        print(f"  first image after a toggle / steady at {steps} steps (from those): " + ", ".join(
            f"{label.removeprefix('after toggle, ')} {(steps * step + v) / (steps * step):.3f}×"
            for label, v in extra.items() if label != "steady"))  # fmt: skip
    for steps in (1, 2, 20):
        gen.stacks.mode = "auto"
        gen.stacks.restore()
        gen.stacks.apply_for_run(three, calls=steps, size=size)
        print(f"  auto mode, {steps:2d} step(s) from unpatched weights: {gen.stacks.last.mode}")
    tmp.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per case (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (set explicitly: the box is shared)")
    ap.add_argument("--demo-steps", type=int, default=20)
    ap.add_argument("--determinism", type=int, default=100, help="alternating 4-step runs checked bit for bit")
    ap.add_argument("--size", type=int, default=256, help="SD1.5-shape image side in px")
    ap.add_argument("--sd15-steps", type=int, default=2, help="UNet calls per SD1.5-shape 'image'")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-sd15", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, threads {torch.get_num_threads()}")
    if not args.skip_demo:
        demo_section(args)
    if not args.skip_sd15:
        sd15_section(args)


if __name__ == "__main__":
    main()
