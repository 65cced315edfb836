"""Adapter-file and shelf timings on SD1.5-shaped rank-16 adapters (CPU, no weights needed).

The adapters' shapes come from the published SD1.5 UNet and CLIP-L configs (assets/model-configs/sd15),
built on torch's meta device, so no 860 M-parameter model is materialised. Prints medians:

- save_adapter, header-only read_adapter_info, cold full-file hashing, cached hashing
- Library.scan of N files (header-only and with cached hashes), import of one file
- read_lora_modules (full load + NaN check), bake concat of 3 and SVD to rank 16
- load_into_pipeline into the tiny SD1.5 pipeline (the matching/refusal overhead on top of diffusers)

    .venv/bin/python bench/shelf_files.py [--files 40] [--repeat 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from timing import median_seconds  # noqa: E402  (bench/timing.py)


def sd15_lora(seed: int, rank: int = 16):
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from app.engine.paths import MODEL_CONFIGS_DIR

    cfg = UNet2DConditionModel.load_config(str(MODEL_CONFIGS_DIR / "sd15" / "unet"))
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(cfg)
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(str(MODEL_CONFIGS_DIR / "sd15" / "text_encoder")))
    gen = torch.Generator().manual_seed(seed)
    out = {"unet": {}, "te": {}}
    for part, model, targets in (("unet", unet, ("to_q", "to_k", "to_v", "to_out.0")),
                                 ("te", te, ("q_proj", "k_proj", "v_proj", "out_proj"))):  # fmt: skip
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear) and name.endswith(targets):
                out[part][f"{name}.lora_A.weight"] = torch.randn(rank, mod.in_features, generator=gen) * 0.01
                out[part][f"{name}.lora_B.weight"] = torch.randn(mod.out_features, rank, generator=gen) * 0.01
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="shelf-bench-"))
    os.environ["STYLESHELF_HOME"] = str(tmp / "home")
    from app.engine.adapters import read_adapter_info, read_lora_modules, save_adapter
    from app.engine.hashcache import file_hashes
    from app.engine.shelf.bake import bake
    from app.engine.shelf.library import Library
    from app.engine.shelf.stack import Stack, StackEntry

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    loras = [sd15_lora(i) for i in range(3)]
    folder = tmp / "team"
    folder.mkdir()
    paths = []
    t_save = []
    for i in range(args.files):
        sd = loras[i % 3]
        t = time.perf_counter()
        paths.append(save_adapter(folder / f"style{i:03d}.safetensors", unet=sd["unet"], text_encoder=sd["te"],
                                  rank=16, alpha=8, family="sd1", title=f"Style {i}"))  # fmt: skip
        t_save.append(time.perf_counter() - t)
    size = paths[0].stat().st_size
    print(f"adapter: SD1.5 attention + CLIP-L attention, rank 16, fp32, {size / 2**20:.1f} MiB")
    print(f"save_adapter                    {statistics.median(t_save) * 1e3:8.1f} ms (median of {len(t_save)})")
    ms = median_seconds(lambda: read_adapter_info(paths[0], with_hashes=False), args.repeat * 10) * 1e3
    print(f"read_adapter_info header-only   {ms:8.2f} ms")

    def cold_hash():
        (Path(os.environ["STYLESHELF_HOME"]) / "cache" / "adapter-hashes.json").unlink(missing_ok=True)
        file_hashes(paths[1])

    print(f"hashes, cold (2 × SHA-256)      {median_seconds(cold_hash, args.repeat) * 1e3:8.1f} ms")
    file_hashes(paths[1])
    ms = median_seconds(lambda: file_hashes(paths[1]), args.repeat * 10) * 1e3
    print(f"hashes, cached                  {ms:8.2f} ms")

    lib = Library([folder], bundled_folder=None)
    ms = median_seconds(lambda: lib.scan(with_hashes=False), args.repeat) * 1e3
    print(f"Library.scan {args.files} files, header-only {ms:8.1f} ms")
    lib.scan()  # fill the hash cache
    ms = median_seconds(lambda: lib.scan(), args.repeat) * 1e3
    print(f"Library.scan {args.files} files, cached hashes {ms:6.1f} ms")
    other = save_adapter(
        tmp / "new.safetensors", unet=sd15_lora(7)["unet"], rank=16, alpha=8, family="sd1", title="new"
    )
    t = time.perf_counter()
    lib.import_file(other)
    print(f"import one file (validate, dup check, copy) {(time.perf_counter() - t) * 1e3:6.1f} ms")
    ms = median_seconds(lambda: read_lora_modules(paths[0]), args.repeat) * 1e3
    print(f"read_lora_modules (load + NaN check) {ms:8.1f} ms")

    stack = Stack([StackEntry(str(p), weight=w) for p, w in zip(paths[:3], (0.8, 0.5, -0.3))])
    ms = median_seconds(lambda: bake(stack, tmp / "c.safetensors"), args.repeat) * 1e3
    print(f"bake concat 3 → rank 48          {ms:8.1f} ms")
    ms = median_seconds(lambda: bake(stack, tmp / "s.safetensors", rank=16), args.repeat) * 1e3
    print(f"bake svd 3 → rank 16             {ms:8.1f} ms")

    from diffusers import DiffusionPipeline

    from app.engine.adapters import load_into_pipeline
    from app.engine.models.tiny import make_tiny

    tiny = make_tiny(tmp / "tiny", "sd15")
    pipe = DiffusionPipeline.from_pretrained(str(tiny))
    gen = torch.Generator().manual_seed(0)
    targets = {f"{n}.lora_A.weight": torch.randn(4, m.in_features, generator=gen) for n, m in pipe.unet.named_modules()
               if isinstance(m, torch.nn.Linear) and n.endswith(("to_q", "to_k", "to_v", "to_out.0"))}  # fmt: skip
    for k in list(targets):
        out = dict(pipe.unet.named_modules())[k.removesuffix(".lora_A.weight")].out_features
        targets[k.replace("lora_A", "lora_B")] = torch.randn(out, 4, generator=gen)
    small = save_adapter(tmp / "tiny-lora.safetensors", unet=targets, rank=4, alpha=4, family="sd1", title="t")
    names = iter(range(10**6))

    def load_unload():
        name = f"a{next(names)}"
        load_into_pipeline(pipe, small, name)
        pipe.delete_adapters(name)

    def diffusers_only():
        name = f"d{next(names)}"
        pipe.load_lora_weights(str(small), adapter_name=name)
        pipe.delete_adapters(name)

    load_unload()
    ours, theirs = median_seconds(load_unload, args.repeat) * 1e3, median_seconds(diffusers_only, args.repeat) * 1e3
    print(f"tiny pipe: load_into_pipeline+delete {ours:6.1f} ms  "
          f"(diffusers load_lora_weights+delete {theirs:6.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
