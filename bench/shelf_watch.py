"""Cost of the live shelf's periodic re-scan (stat only, no file reads) on a folder of N adapter-sized files.

    .venv/bin/python bench/shelf_watch.py [N]

Prints the median time of ``scan_folders`` over the folder (what the watcher runs every few seconds on a
pool thread) and of reading every file's header with the library (what a full shelf refresh costs).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.gui.folder_watch import scan_folders  # noqa: E402  (no Qt event loop needed for the scan itself)


def main(n: int = 500) -> None:
    import torch

    from app.engine.adapters import save_adapter
    from app.engine.shelf.library import Library

    attn = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(n):
            sub = folder / f"team-{i % 10}"
            sub.mkdir(exist_ok=True)
            gen = torch.Generator().manual_seed(i)
            sd = {f"{attn}.lora_A.weight": torch.randn(8, 32, generator=gen),
                  f"{attn}.lora_B.weight": torch.randn(64, 8, generator=gen)}  # fmt: skip
            save_adapter(sub / f"style-{i}.safetensors", unet=sd, rank=8, alpha=8, family="sd1", title=f"s{i}")
        scans = []
        for _ in range(21):
            t = time.perf_counter()
            files, _dirs = scan_folders([str(folder)])
            scans.append(time.perf_counter() - t)
        assert len(files) == n
        lib = Library([folder], bundled_folder=None, user_folder=folder / "none")
        lib.scan(with_hashes=True)  # warm the hash cache, as a running app has
        headers = []
        for _ in range(5):
            t = time.perf_counter()
            lib.scan(with_hashes=True)
            headers.append(time.perf_counter() - t)
        print(
            f"{n} files in 10 folders: re-scan (stat only) median {statistics.median(scans) * 1000:.1f} ms; "
            f"full library scan (headers, cached hashes) median {statistics.median(headers) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
