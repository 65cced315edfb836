"""Base-model loading figures: header-only detection vs full loads, tiny and (optionally) full-size.

    .venv/bin/python bench/models_load.py            # tiny SD1 folder / single file, full-size SD1.5 detect
    .venv/bin/python bench/models_load.py --full     # also load a full-size zero-filled SD1.5 (bf16, ~5 GB RAM)

Prints medians over --repeat runs. Full-size files are sparse skeletons (app/engine/models/skeleton_file.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from timing import median_seconds  # noqa: E402  (bench/timing.py)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="also time a full-size SD1.5 single-file load")
    args = parser.parse_args()

    from app.engine.models.detect import detect_family
    from app.engine.models.loading import load_base
    from app.engine.models.single_file import export_single_file
    from app.engine.models.skeleton_file import write_skeleton_checkpoint
    from app.engine.models.tiny import make_tiny

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = make_tiny(tmp / "tiny-sd15", "sd15")
        load_base(folder)  # warm imports
        single = export_single_file(folder, tmp / "tiny.safetensors")
        print(f"tiny sd15 folder load:       {median_seconds(lambda: load_base(folder), args.repeat):.3f} s (median)")
        print(
            f"tiny sd15 single-file load:  "
            f"{median_seconds(lambda: load_base(single, config=folder), args.repeat):.3f} s (median)"
        )
        print(
            f"tiny sd15 export:            "
            f"{median_seconds(lambda: export_single_file(folder, tmp / 'x.safetensors'), args.repeat):.3f} s (median)"
        )
        full = write_skeleton_checkpoint("sd1", tmp / "v1-5-pruned-emaonly.safetensors")
        print(
            f"full-size SD1.5 detect ({full.stat().st_size / 1e9:.1f} GB file): "
            f"{median_seconds(lambda: detect_family(full), args.repeat) * 1e3:.2f} ms (median)"
        )
        if args.full:
            print(
                f"full-size SD1.5 single-file load (bf16, CPU): "
                f"{median_seconds(lambda: load_base(full, dtype='bf16'), 1):.1f} s (1 run)"
            )


if __name__ == "__main__":
    main()
