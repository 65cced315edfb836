"""No shareable file carries a path of the machine that made it (developers' guide, privacy rule).

Every input of one session (base model, adapters, pictures, dataset, output folders) lives under a folder whose
name is a marker, given as absolute paths. Each kind of file a person shares is then made and its bytes read
as another program would (PNG text chunks decompressed, the safetensors header, JSON) and searched for the
marker and for the temporary folder's path. Names and hashes are what a shared file may carry.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers.tiny_lora import write_tiny_lora
from PIL import Image, ImageDraw

from tests.helpers.train_configs import tiny_run

MARKER = "secret-home-XYZ"


def shared_text(path: Path) -> str:
    """Everything a reader of ``path`` can see, as text: raw bytes plus decompressed PNG chunks / the header."""
    raw = Path(path).read_bytes()
    parts = [raw.decode("latin-1")]
    if raw[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 8 <= len(raw):
            length = int.from_bytes(raw[pos : pos + 4], "big")
            kind, body = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
            if kind in (b"zTXt", b"iTXt"):
                _key, _, rest = body.partition(b"\0")
                if kind == b"zTXt":
                    parts.append(zlib.decompress(rest[1:]).decode("latin-1"))
                else:  # compression flag, method, language\0, translated keyword\0, text
                    flag, rest = rest[0], rest[2:]
                    rest = rest.split(b"\0", 2)[-1]
                    parts.append((zlib.decompress(rest) if flag else rest).decode("utf-8"))
            pos += 12 + length
    elif path.suffix == ".safetensors":
        size = int.from_bytes(raw[:8], "little")
        parts.append(raw[8 : 8 + size].decode("utf-8"))
    return "\n".join(parts)


def assert_no_machine_path(path: Path, root: Path) -> None:
    text = shared_text(path)
    for secret in (MARKER, str(root), str(root.resolve()), json.dumps(str(root))[1:-1]):
        assert secret not in text, f"{path.name} carries {secret!r}"


@pytest.fixture(scope="module")
def machine(tmp_path_factory, tiny_sd15):
    """A person's folders, all under ``…/secret-home-XYZ``; the base and adapters given by absolute path."""
    root = tmp_path_factory.mktemp("machine")
    home = root / MARKER
    base = home / "models" / "tiny-base"
    shutil.copytree(tiny_sd15, base)
    shelf = home / "shelf"
    ink = write_tiny_lora(shelf / "ink.safetensors", seed=1)
    wash = write_tiny_lora(shelf / "wash.safetensors", seed=2)
    pictures = home / "pictures"
    pictures.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("sketch.png", "frame-1.png", "frame-2.png"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(pictures / name)
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((8, 8, 40, 40), fill=255)
    mask.save(home / "mask.png")
    return root, home, base.resolve(), ink.resolve(), wash.resolve()


@pytest.fixture(scope="module")
def generator(machine):
    from app.engine.generate import Generator

    return Generator(str(machine[2]))


def _config(machine, **kw):
    from app.engine.generate import GenerateConfig
    from app.engine.shelf.stack import StackEntry

    _root, home, _base, ink, wash = machine
    stack = [StackEntry(str(ink), weight=0.8), StackEntry(str(wash), enabled=False)]
    values = {
        "prompt": "a lighthouse",
        "steps": 2,
        "seed": 3,
        "preview_every": 0,
        "stack": stack,
        "out_dir": str(home / "out"),
    }
    return GenerateConfig(**{**values, **kw})


def test_text_to_image_png(machine, generator):
    (made,) = generator.generate(_config(machine))
    assert_no_machine_path(made.path, machine[0])


def test_image_to_image_and_inpainting_pngs(machine, generator):
    home = machine[1]
    sketch = str(home / "pictures" / "sketch.png")
    (img2img,) = generator.generate(_config(machine, init_image=sketch, strength=0.5, file_stem="i2i"))
    (inpaint,) = generator.generate(_config(machine, init_image=sketch, mask_image=str(home / "mask.png"),
                                            file_stem="inpaint"))  # fmt: skip
    for made in (img2img, inpaint):
        assert_no_machine_path(made.path, machine[0])


def test_batch_restyle_pngs(machine, generator):
    from app.engine.generate.batch import restyle_folder

    home = machine[1]
    made = restyle_folder(generator, _config(machine, strength=0.5), home / "pictures", home / "restyled")
    assert len(made) == 3
    for image in made:
        assert_no_machine_path(image.path, machine[0])


def test_grid_png_and_its_cells(machine, generator):
    from app.engine.generate.grid import run_grid
    from app.engine.generate.grid_plan import GridConfig

    home = machine[1]
    generate = _config(machine, init_image=str(home / "pictures" / "sketch.png"), strength=0.5)
    _root, _home, _base, ink, wash = machine
    # Styles typed as paths on the axes, as on the command line: the grid names them by file name.
    grid = GridConfig(
        x=f"strength:{ink}=0,1", y=f"style={wash},none", out=str(home / "grids" / "cmp.png"), generate=generate
    )
    result = run_grid(grid, generator=generator, find_style=lambda name: str(Path(name).resolve()))
    for path in [result.grid, *result.cells.values()]:
        assert_no_machine_path(path, machine[0])


def test_bake_edit_sidecar_and_stack_file(machine):
    from app.engine.adapters import read_adapter_info
    from app.engine.adapters.edit import edit_metadata
    from app.engine.adapters.sidecar import write_sidecar
    from app.engine.shelf.bake import bake
    from app.engine.shelf.stack import StackEntry
    from app.engine.shelf.stack_file import save_stack_file

    root, home, _base, ink, wash = machine
    entries = [StackEntry(str(ink), weight=0.7), StackEntry(str(wash), weight=0.4)]
    baked = bake(entries, home / "baked" / "house.safetensors")
    svd = bake(entries, home / "baked" / "house-r1.safetensors", rank=1)
    edited = home / "baked" / "edited.safetensors"
    shutil.copy(ink, edited)
    edit_metadata(edited, title="Ink, edited", description="edited on the shelf")
    sidecar = write_sidecar(baked, read_adapter_info(baked))
    for e in entries:
        e.sha256 = read_adapter_info(Path(e.path)).tensor_sha256
    stack_file = save_stack_file(home / "shelf", "House", entries, description="the team's look")
    for path in (baked, svd, edited, sidecar, stack_file):
        assert_no_machine_path(path, root)


def test_trained_adapter_samples_and_exported_checkpoints(machine):
    from app.engine.train import train
    from app.engine.train.checkpoint_export import export_all
    from tests.helpers.datasets import make_style_set

    root, home, base, _ink, _wash = machine
    data = make_style_set(home / "datasets" / "stripes", 4, seed=1)
    out = home / "adapters" / "stripy.safetensors"
    cfg = tiny_run(
        data.resolve(),
        base,
        out.resolve(),
        steps=2,
        rank=2,
        checkpoint_every=1,
        keep_checkpoints=2,
        trigger="stripy",
        validation_images=2,
    )
    result = train(cfg)
    exported = export_all(result.adapter, into=home / "exports")
    samples = sorted(out.with_name(out.stem + ".samples").glob("*.png"))
    assert exported and samples
    for path in [Path(result.adapter), *exported, *samples]:
        assert_no_machine_path(path, root)
