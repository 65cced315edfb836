"""A corpus of hostile adapter files, generated (never checked in): what a team share or a download folder
can hold. Each kind says what StyleShelf must make of it at each stage (inspect, import, the shelf scan,
generate); ``tests/test_hostile_corpus.py`` runs every kind through every stage.

Kinds derive from one good adapter for the tiny test model (``good``), so "header fine, tensors broken"
cases differ from a working file in exactly one way. Run directly to write the corpus to a folder:

    PYTHONPATH=. python -m tests.helpers.hostile_files GOOD.safetensors OUT_DIR
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# What each stage makes of a kind:
#   inspect:  "refuse" (exit 2, one line on stderr) | "warn" (exit 0, a ⚠ line) | "ok"
#   import:   "refused" | "imported"
#   scan:     "skipped" (out of the list, with a reason) | "listed"
#   generate: "refused" (UserError, one line, before or while sampling) | "image"
REFUSED_EVERYWHERE = {"inspect": "refuse", "import": "refused", "scan": "skipped", "generate": "refused"}


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[Path, "Good"], Path]  # (folder, good adapter) → the hostile file's path
    expect: dict  # stage → outcome, see above
    reason: str = ""  # a regex the one-line reason must contain (inspect's error or warning)


@dataclass
class Good:
    """The good adapter the variants start from: its metadata and tensors (name → torch tensor)."""

    path: Path
    blob: bytes
    metadata: dict
    tensors: dict

    @classmethod
    def read(cls, path: Path) -> "Good":
        from safetensors.torch import load

        blob = path.read_bytes()
        n = int.from_bytes(blob[:8], "little")
        meta = json.loads(blob[8 : 8 + n]).get("__metadata__", {})
        # Our writer records the tensor hash; variants change tensors, so drop it (else: a "damaged" warning).
        meta = {k: v for k, v in meta.items() if k not in ("sshs_model_hash", "modelspec.hash_sha256")}
        return cls(path, blob, meta, dict(load(blob)))

    def first_module(self) -> str:
        return sorted(k for k in self.tensors if k.endswith(".lora_down.weight"))[0].removesuffix(".lora_down.weight")


# ------------------------------------------------------------------------------------------ writers
def _raw(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _save(path: Path, tensors: dict, metadata: dict | None = None) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def _variant(edit: Callable[[dict, "Good"], None], meta: dict | None = None) -> Callable[[Path, Good], Path]:
    """A copy of the good adapter with its tensors changed by ``edit(tensors, good)``."""

    def build(path: Path, good: Good) -> Path:
        tensors = {k: v.clone() for k, v in good.tensors.items()}
        edit(tensors, good)
        return _save(path, tensors, {**good.metadata, **(meta or {})})

    return build


def _entry(dtype: str = "F32", shape=(1,), offsets=(0, 4)) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def _lora_header(**fields) -> bytes:
    """One tensor entry under a LoRA-looking name: well-formed except for ``fields`` (see ``_entry``)."""
    return _json({"lora_unet_x.lora_down.weight": _entry(**fields)})


# ------------------------------------------------------------------------------------------ the kinds
def _set_dtype(dtype: str):
    def edit(t, good):
        import torch

        for k in list(t):
            if not k.endswith(".alpha"):
                t[k] = (t[k] * 100).to(getattr(torch, dtype))

    return edit


def _nan(t, good):
    key = good.first_module() + ".lora_up.weight"
    t[key][0, 0] = float("nan")


def _alpha(value):
    def edit(t, good):
        import torch

        for k in t:
            if k.endswith(".alpha"):
                t[k] = torch.tensor(value, dtype=torch.float32)

    return edit


def _wide_rank(t, good):
    import torch

    module = good.first_module()
    down, up = t[f"{module}.lora_down.weight"], t[f"{module}.lora_up.weight"]
    rank = min(down.shape[1], up.shape[0]) + 2
    t[f"{module}.lora_down.weight"] = torch.randn(rank, down.shape[1]) * 0.01
    t[f"{module}.lora_up.weight"] = torch.randn(up.shape[0], rank) * 0.01


def _vector_alpha(t, good):
    import torch

    t[good.first_module() + ".alpha"] = torch.ones(3)


def _unpaired(t, good):
    del t[good.first_module() + ".lora_up.weight"]


def _rank_mismatch(t, good):
    import torch

    module = good.first_module()
    up = t[f"{module}.lora_up.weight"]
    t[f"{module}.lora_up.weight"] = torch.zeros(up.shape[0], up.shape[1] + 1)


def _other_model(t, good):
    import torch

    t.clear()
    name = "lora_unet_down_blocks_9_attentions_0_transformer_blocks_0_attn2_to_k"
    t.update({f"{name}.lora_down.weight": torch.randn(4, 2048), f"{name}.lora_up.weight": torch.randn(640, 4),
              f"{name}.alpha": torch.tensor(4.0)})  # fmt: skip


def _misfit(t, good):
    import torch

    module = good.first_module()
    down = t[f"{module}.lora_down.weight"]
    t[f"{module}.lora_down.weight"] = torch.randn(down.shape[0], down.shape[1] + 3)


def _loha(path: Path, good: Good) -> Path:
    import torch

    return _save(path, {"lora_unet_x.hada_w1_a": torch.zeros(2, 2), "lora_unet_x.hada_w1_b": torch.zeros(2, 2)})


def _vae(path: Path, good: Good) -> Path:
    import torch

    return _save(
        path, {"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3), "decoder.conv_out.weight": torch.zeros(3, 8, 3, 3)}
    )


def _mixed(t, good):
    import torch

    t["model.diffusion_model.out.2.weight"] = torch.zeros(4, 4)


def _peft_bad_metadata(path: Path, good: Good) -> Path:
    import torch

    name = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    tensors = {f"{name}.lora_A.weight": torch.zeros(2, 64), f"{name}.lora_B.weight": torch.zeros(64, 2)}
    return _save(path, tensors, {"lora_adapter_metadata": "{" * 3 + "not json"})


def _huge_key(path: Path, good: Good) -> Path:
    import torch

    return _save(path, {"k" * 1_000_000: torch.zeros(1)})


def _no_tensors(path: Path, good: Good) -> Path:
    return _save(path, {})


def _huge_header(path: Path, good: Good) -> Path:
    """A real LoRA with 20 MB of junk metadata: far beyond any real adapter's header."""
    n = int.from_bytes(good.blob[:8], "little")
    header = json.loads(good.blob[8 : 8 + n])
    header["__metadata__"] = {**header.get("__metadata__", {}), "junk": "x" * 20_000_000}
    raw = _json(header)
    raw += b" " * (-len(raw) % 8)
    return _raw(path, raw, good.blob[8 + n :])


def _nested_array(path: Path, good: Good) -> Path:
    return _raw(path, b"[" * 1000 + b"]" * 1000)  # the 2 KB file of the report


def _nested_in_entry(path: Path, good: Good) -> Path:
    return _raw(path, b'{"lora_unet_x.lora_down.weight": {"dtype": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}")


def _pickle(path: Path, good: Good) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": list(range(1000))}, protocol=2))
    return path


def _zip(path: Path, good: Good) -> Path:
    with zipfile.ZipFile(path, "w") as z:  # what torch.save writes
        z.writestr("archive/data.pkl", pickle.dumps({"weights": [0.0] * 100}))
        z.writestr("archive/version", "3\n")
    return path


def _folder(path: Path, good: Good) -> Path:
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like an adapter")
    return path


def _broken_link(path: Path, good: Good) -> Path:
    os.symlink(path.parent / "moved-away.safetensors", path)
    return path


def _bytes(content: Callable[[Good], bytes]) -> Callable[[Path, Good], Path]:
    """A file whose bytes are ``content(good)``."""

    def build(path: Path, good: Good) -> Path:
        path.write_bytes(content(good))
        return path

    return build


def _text(content: bytes) -> Callable[[Path, Good], Path]:
    return _bytes(lambda good: content)


def _header(raw: bytes, data: bytes = b"") -> Callable[[Path, Good], Path]:
    return lambda path, good: _raw(path, raw, data)


_F4 = struct.pack("<f", 1.0)
_NOT_ADAPTER = {"inspect": "refuse", "import": "refused", "scan": "listed", "generate": "refused"}

KINDS: list[Kind] = [
    # --- the container: not a safetensors file, or a damaged one -----------------------------------------
    Kind("empty", _text(b""), REFUSED_EVERYWHERE, "empty or truncated"),
    Kind("five-bytes", _text(b"\x05\x00\x00\x00\x00"), REFUSED_EVERYWHERE, "empty or truncated"),
    Kind(
        "header-longer-than-file",
        _bytes(lambda g: (4096).to_bytes(8, "little") + b"{}"),
        REFUSED_EVERYWHERE,
        "ends inside its header",
    ),
    Kind(
        "header-length-2^40",
        _bytes(lambda g: (2**40).to_bytes(8, "little") + b"{}"),
        REFUSED_EVERYWHERE,
        "damaged or not a safetensors file",
    ),
    Kind(
        "header-length-zero",
        _bytes(lambda g: bytes(8) + b"{}"),
        REFUSED_EVERYWHERE,
        "damaged or not a safetensors file",
    ),
    Kind("cut-inside-header", _bytes(lambda g: g.blob[:200]), REFUSED_EVERYWHERE, "truncated"),
    Kind("cut-inside-tensors", _bytes(lambda g: g.blob[:-100]), REFUSED_EVERYWHERE, "truncated"),
    Kind("nested-json-2kb", _nested_array, REFUSED_EVERYWHERE, "nested too deeply"),
    Kind("nested-json-in-entry", _nested_in_entry, REFUSED_EVERYWHERE, "nested too deeply"),
    Kind("binary-garbage-header", _header(bytes(range(256)) * 2), REFUSED_EVERYWHERE, "malformed"),
    Kind("invalid-utf8-header", _header(b'{"a\xff\xfe": 1}     '), REFUSED_EVERYWHERE, "malformed"),
    Kind("header-is-a-list", _header(b"[1, 2, 3]"), REFUSED_EVERYWHERE, "not a JSON object"),
    Kind("metadata-is-a-list", _header(_json({"__metadata__": [1, 2]})), REFUSED_EVERYWHERE, "metadata"),
    Kind("metadata-not-strings", _header(_json({"__metadata__": {"a": {"b": 1}}})), REFUSED_EVERYWHERE, "metadata"),
    Kind(
        "entry-without-dtype",
        _header(_json({"lora_unet_x.lora_down.weight": {"shape": [1], "data_offsets": [0, 4]}}), _F4),
        REFUSED_EVERYWHERE,
        "malformed header entry",
    ),
    Kind("unknown-dtype", _header(_lora_header(dtype="F128"), _F4), REFUSED_EVERYWHERE, "malformed header entry"),
    Kind("negative-shape", _header(_lora_header(shape=[-1]), _F4), REFUSED_EVERYWHERE, "malformed header entry"),
    Kind("size-not-shape", _header(_lora_header(shape=[2]), _F4), REFUSED_EVERYWHERE, "does not match its shape"),
    Kind("offsets-reversed", _header(_lora_header(offsets=[4, 0]), _F4), REFUSED_EVERYWHERE, "malformed header entry"),
    Kind("float-shape", _header(_lora_header(shape=[1.5]), _F4), REFUSED_EVERYWHERE, "malformed header entry"),
    Kind(
        "5000-digit-number",
        _header(b'{"lora_unet_x.lora_down.weight": {"dtype": "F32", "shape": [' + b"9" * 5000 + b"]}}"),
        REFUSED_EVERYWHERE,
        "malformed",
    ),
    Kind(
        "offset-1e400",
        _header(b'{"lora_unet_x.lora_down.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e400]}}', _F4),
        REFUSED_EVERYWHERE,
        "malformed header entry",
    ),
    Kind(
        "overlapping-tensors",
        _header(
            _json(
                {
                    "lora_unet_x.lora_down.weight": _entry(shape=[2, 1], offsets=[0, 8]),
                    "lora_unet_x.lora_up.weight": _entry(shape=[1, 2], offsets=[4, 12]),
                }
            ),
            _F4 * 3,
        ),
        REFUSED_EVERYWHERE,
        "overlaps",
    ),
    Kind(
        "hole-between-tensors",
        _header(_json({"lora_unet_x.lora_down.weight": _entry(offsets=[4, 8])}), _F4 * 2),
        REFUSED_EVERYWHERE,
        "hole",
    ),
    Kind(
        "bytes-after-tensors",
        _bytes(lambda g: g.blob + b"PK\x03\x04 a second file hides here"),
        REFUSED_EVERYWHERE,
        "unexplained bytes",
    ),
    Kind("header-of-20mb", _huge_header, REFUSED_EVERYWHERE, "far beyond any real file"),
    Kind("pickle-renamed", _pickle, REFUSED_EVERYWHERE, "is a Python pickle"),
    Kind("torch-zip-renamed", _zip, REFUSED_EVERYWHERE, "is a zip archive"),
    Kind(
        "html-error-page",
        _text(b"<!DOCTYPE html><html><body>403 Forbidden</body></html>"),
        REFUSED_EVERYWHERE,
        "web page",
    ),
    Kind(
        "git-lfs-pointer",
        _text(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"),
        REFUSED_EVERYWHERE,
        "Git LFS pointer",
    ),
    # Not there as a file: generation leaves it out with a warning, like a style that vanished from a team share
    # (the team-shelf rule: a missing file never breaks generation); everything else refuses it.
    Kind(
        "folder-named-safetensors",
        _folder,
        {**REFUSED_EVERYWHERE, "scan": "absent", "generate": "image"},
        "is a folder",
    ),
    Kind("broken-symlink", _broken_link, {**REFUSED_EVERYWHERE, "generate": "image"}, "broken link|does not exist"),
    # --- a valid container, but not a LoRA we can apply --------------------------------------------------
    Kind("int32-weights", _variant(_set_dtype("int32")), REFUSED_EVERYWHERE, r"is I32; LoRA weights must be float32"),
    Kind("uint8-weights", _variant(_set_dtype("uint8")), REFUSED_EVERYWHERE, r"is U8"),
    Kind("float64-weights", _variant(_set_dtype("float64")), REFUSED_EVERYWHERE, r"is F64"),
    Kind("vector-alpha", _variant(_vector_alpha), REFUSED_EVERYWHERE, "holds 3 values"),
    Kind("unpaired-down", _variant(_unpaired), REFUSED_EVERYWHERE, "not paired"),
    Kind("rank-mismatch", _variant(_rank_mismatch), REFUSED_EVERYWHERE, "malformed LoRA"),
    Kind("loha", _loha, REFUSED_EVERYWHERE, "malformed LyCORIS module"),
    Kind("vae-weights", _vae, REFUSED_EVERYWHERE, "no LoRA weights"),
    Kind("lora-plus-unknown", _variant(_mixed), REFUSED_EVERYWHERE, "mixes LoRA weights"),
    Kind("no-tensors", _no_tensors, REFUSED_EVERYWHERE, "no tensors"),
    Kind("megabyte-key", _huge_key, REFUSED_EVERYWHERE, "no LoRA weights"),
    # --- the header is a fine LoRA; the tensors or the numbers are not ------------------------------------
    Kind("nan-in-weights", _variant(_nan), _NOT_ADAPTER, "NaN or Inf"),
    Kind("inf-alpha", _variant(_alpha(math.inf)), _NOT_ADAPTER, "NaN or Inf"),
    Kind("peft-metadata-not-json", _peft_bad_metadata, _NOT_ADAPTER, "not valid JSON"),
    Kind(
        "alpha-3e38",
        _variant(_alpha(3e38)),
        {"inspect": "warn", "import": "refused", "scan": "listed", "generate": "refused"},
        "absurd scale",
    ),
    Kind(
        "alpha-zero",
        _variant(_alpha(0.0)),
        {"inspect": "warn", "import": "imported", "scan": "listed", "generate": "image"},
        "changes nothing",
    ),
    Kind(
        "rank-wider-than-layer",
        _variant(_wide_rank),
        {"inspect": "warn", "import": "imported", "scan": "listed", "generate": "image"},
        "rank wider than their layer",
    ),
    Kind(
        "for-another-model",
        _variant(_other_model),
        {"inspect": "ok", "import": "imported", "scan": "listed", "generate": "refused"},
        "",
    ),
    Kind(
        "shape-misfit",
        _variant(_misfit),
        {"inspect": "ok", "import": "imported", "scan": "listed", "generate": "refused"},
        "",
    ),
]


def write_corpus(good_path: Path, folder: Path) -> dict[str, Path]:
    """Every kind, one file each, into ``folder`` (names ``<kind>.safetensors``)."""
    good = Good.read(good_path)
    folder.mkdir(parents=True, exist_ok=True)
    return {k.name: k.build(folder / f"{k.name}.safetensors", good) for k in KINDS}


if __name__ == "__main__":
    written = write_corpus(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"wrote {len(written)} hostile files to {sys.argv[2]}")
