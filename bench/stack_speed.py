"""Stacked styles at the base model's speed: per-image cost of a 3-style stack, patched vs side path.

Runs alternate in one process (cases interleaved each round, so machine load drifts hit all alike) and
ratios come from process CPU time (with one torch thread it does not count time other programs held the
cores; wall time is printed beside it). Goals (issue 14): 3-style stack ≤ 1.05× no stack on the demo model
and on the SD1.5-shaped UNet; patch + restore of 3 rank-16 styles on SD1.5 shape ≤ 0.5 s; toggle/reweight
with 16 loaded ≤ 30 ms; first image after a toggle ≤ 1.1× a steady one; same seed + stack → same image
bit for bit across alternating runs.

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
                                   "first after toggle", "steady (same stack)")}  # fmt: skip
    toggle_apply, toggle_patch = [], []
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
        image(gen, two, "patch")  # toggle the third style off ...
        w, c = timed(lambda: image(gen, three, "patch"))  # ... and on: this image re-patches its layers
        cases["first after toggle"][0].append(w)
        cases["first after toggle"][1].append(c)
        toggle_apply.append(gen.stacks.last.seconds)
        toggle_patch.append(gen.stacks.last.stats.seconds)
    base = med(cases["no stack"][1])
    for label, (w, c) in cases.items():
        goal = {"3 styles patched": "goal ≤ 1.05×", "first after toggle": "goal ≤ 1.1× steady"}.get(label, "")
        row(label, w, c, base, goal)
    print(f"  first after toggle / steady: {med(cases['first after toggle'][1]) / med(cases['steady (same stack)'][1]):.3f}×"
          f"   toggle takes effect in {med(toggle_apply) * 1000:.1f} ms wall (re-patching its layers "
          f"{med(toggle_patch) * 1000:.1f} ms cpu)   goal ≤ 30 ms")  # fmt: skip
    print(f"  auto mode picks: {auto_choice(gen, lambda m: image(gen, three, m))}")
    determinism(gen, three, two, image, args.determinism)
    tmp.cleanup()


def auto_choice(gen, run) -> str:
    gen.stacks.restore()
    run("auto")
    return gen.stacks.last.mode


def determinism(gen, three, two, image, runs: int) -> None:
    """Alternate stacks and modes for ``runs`` images (4 steps); each kind must repeat bit for bit."""
    from PIL import Image

    seen: dict[tuple[str, str], set[str]] = {}
    kinds = [("3 styles", three, "patch"), ("2 styles", two, "patch"), ("3 styles", three, "side"), ("none", [], "patch")]
    for i in range(runs):
        name, stack, mode = kinds[i % len(kinds)]
        with Image.open(image(gen, stack, mode, steps=4, seed=5)) as im:
            digest = hashlib.sha256(im.tobytes()).hexdigest()
        seen.setdefault((name, mode), set()).add(digest)
    same = all(len(d) == 1 for d in seen.values())
    print(f"  determinism: {runs} alternating runs over {len(seen)} (stack, mode) kinds: "
          f"{'every kind bit-identical' if same else 'DIFFERENCES: ' + str({k: len(v) for k, v in seen.items()})}")


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
                for series, value in zip(patch, timed(lambda: apply(active, mode))):
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

    # Toggle / reweight with 16 loaded: what it takes until sampling can start.
    apply(three, "patch")
    variants = [three[:2], three, [*three[:2], ActiveAdapter(names[2], 0.9, 0.9)], three]
    total, repatch, side_switch = [], [], []
    for i in range(args.rounds * 4):
        total.append(timed(lambda: apply(variants[i % 4], "patch"))[1])
        repatch.append(gen.stacks.last.stats.seconds)  # CPU seconds (the runner's clock on CPU)
        t = time.perf_counter()
        gen.stacks.adapters.activate(variants[i % 4])  # the side path's switch alone, for comparison
        side_switch.append(time.perf_counter() - t)
        gen.stacks.adapters.activate([])
    switch = [a - b for a, b in zip(total, repatch)]
    step = base / args.sd15_steps
    print(f"  toggle/reweight one style, 16 loaded (cpu): switch {med(switch) * 1000:.1f} ms (goal ≤ 30 ms) + re-patch "
          f"of its layers {med(repatch) * 1000:.0f} ms; side-path switch (wall) {med(side_switch) * 1000:.1f} ms")  # fmt: skip
    for steps in (20, args.sd15_steps):
        print(f"  first image after a toggle vs steady, {steps} steps: {(steps * step + med(repatch)) / (steps * step):.3f}× "
              f"(from the medians above)")  # fmt: skip
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
