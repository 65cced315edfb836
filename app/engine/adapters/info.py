"""What an adapter file is, from its header alone: title, family, rank, layout, thumbnail, hashes.

No tensor is loaded, so listing a shelf of hundreds of adapters stays fast. Deeper checks (NaN/Inf,
shapes against a base) happen when an adapter is loaded (``loader.py``).
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.engine.adapters.keys import classify_key, component_of, is_unsupported_adapter_key
from app.engine.adapters.lycoris import algorithm, classify_lycoris_key, header_shape, refused_format
from app.engine.errors import AdapterError
from app.engine.hashcache import cached_hashes, file_hashes, remember_hashes
from app.engine.models.families import (
    CROSS_ATTENTION_FAMILY,
    DEMO_BLOCK_CHANNELS,
    DEMO_CROSS_ATTENTION,
    DEMO_REASON,
    FAMILIES,
    TEXT_ENCODER_FAMILY,
    family_of_architecture,
)
from app.engine.safetensors_file import (
    CHANGED_HINT,
    MAX_ADAPTER_HEADER_BYTES,
    Header,
    read_file,
    read_header,
    short_repr,
)

UNKNOWN = "unknown"

# LoRA weights are applied in floating point; integer or 8-bit-float "weights" are damage or another format.
WEIGHT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_ALPHA_DTYPES = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8"}  # a scalar: ints are meaningful


@dataclass
class AdapterInfo:
    path: str
    title: str
    trigger_phrase: str
    family: str  # sd1 | sd2 | sd2-v | sdxl | demo | unknown
    family_source: str  # metadata | shapes | unknown
    family_reason: str  # why we believe it, shown next to any compatibility flag
    rank: int | None  # the most common rank over modules
    ranks: list[int]
    layout: str  # kohya | kohya-sgm | diffusers | peft (or "mixed: …")
    algorithm: str = field(default="lora", kw_only=True)  # lora | loha | lokr | full | dora, "+"-joined when mixed
    module_count: int
    components: dict[str, int]  # unet / text_encoder / text_encoder_2 → module count
    has_alpha: bool
    description: str
    author: str
    date: str
    tags: list[str]
    thumbnail: bytes | None
    thumbnail_mime: str
    file_size: int
    sha256: str  # full file
    autov2: str  # first 10 hex of the full-file sha256, as Civitai shows it
    tensor_sha256: str  # data section only: unchanged by metadata edits
    metadata: dict[str, str] = field(repr=False, default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def short_hash(self) -> str:
        """AUTOMATIC1111's "Lora hashes" value: first 12 hex of the tensor-data hash."""
        return self.tensor_sha256[:12]

    def to_json_dict(self, *, with_metadata: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["name"] = self.name
        d["short_hash"] = self.short_hash
        d["thumbnail"] = f"<{len(self.thumbnail)} bytes {self.thumbnail_mime}>" if self.thumbnail else None
        if not with_metadata:
            d.pop("metadata")
        else:
            d["metadata"] = {
                k: (v if len(v) < 300 else v[:300] + f"… ({len(v)} chars)") for k, v in self.metadata.items()
            }
        return d


def family_from_metadata(meta: dict[str, str]) -> tuple[str, str] | None:
    arch = meta.get("modelspec.architecture", "")
    if arch:
        fam = family_of_architecture(arch)
        if fam:
            return fam, f"modelspec.architecture = {arch}"
    version = meta.get("ss_base_model_version", "")
    for fam, info in FAMILIES.items():
        if version == info.ss_base_model_version:
            return fam, f"ss_base_model_version = {version}"
    if version.startswith("sdxl_"):
        return "sdxl", f"ss_base_model_version = {version}"
    if meta.get("ss_v2") == "True":
        v = meta.get("ss_v_parameterization") == "True"
        return ("sd2-v" if v else "sd2"), "ss_v2 = True"
    if arch:
        return None  # an architecture we do not know: fall back to shapes, but remember it
    if version.startswith("sd_v1") or meta.get("ss_v2") == "False":
        return "sd1", "ss_v2 = False"
    return None


def family_from_shapes(shapes: dict[str, tuple[str, tuple[int, ...]]]) -> tuple[str, str]:
    """Guess the family from key names and widths. ``shapes``: canonical module → (part, shape of down)."""
    if any(m.startswith("lora_te2_") for m in shapes):
        return "sdxl", "has a second text encoder (lora_te2_)"
    for module, (_part, shape) in shapes.items():
        if module.startswith("lora_unet_") and module.endswith(("attn2_to_k", "attn2_to_v")) and len(shape) >= 2:
            width = shape[1]
            fam = CROSS_ATTENTION_FAMILY.get(width)
            if fam:
                return fam, f"cross-attention input width {width}"
            if width == DEMO_CROSS_ATTENTION and _mid_block_width(shapes) == DEMO_BLOCK_CHANNELS[-1]:
                return "demo", DEMO_REASON
            return UNKNOWN, f"cross-attention input width {width} matches no known family (a test or custom model?)"
    for module, (_part, shape) in shapes.items():
        if module.startswith(("lora_te_", "lora_te1_")) and module.endswith("q_proj") and len(shape) >= 2:
            fam = TEXT_ENCODER_FAMILY.get(shape[1])
            if fam:
                return fam, f"text-encoder width {shape[1]}"
            return UNKNOWN, f"text-encoder width {shape[1]} matches no known family"
    return UNKNOWN, "no cross-attention or text-encoder LoRA to measure"


def _mid_block_width(shapes: dict[str, tuple[str, tuple[int, ...]]]) -> int | None:
    """Input width of the UNet's middle self-attention (its deepest channel count), when the file has it."""
    for module, (_part, shape) in shapes.items():
        if module.startswith("lora_unet_mid_block_attentions_0_") and module.endswith("attn1_to_q") and len(shape) >= 2:
            return shape[1]
    return None


def analyse_keys(header: Header, name: str) -> dict[str, Any]:
    """Classify every key; refuse files that are not (supported) LoRA adapters."""
    layouts: collections.Counter[str] = collections.Counter()
    downs: dict[str, tuple[int, ...]] = {}
    ups: dict[str, tuple[int, ...]] = {}
    alphas: set[str] = set()
    unknown: list[str] = []
    unsupported: list[str] = []
    lycoris: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, spec in header.tensors.items():
        lyco = classify_lycoris_key(key)
        if lyco is not None:
            module, part, layout = lyco
            lycoris.setdefault(module, {})[part] = spec.shape
            layouts[layout] += 1
            continue
        refused = refused_format(key)
        if refused:
            raise AdapterError(
                f"{name}: uses {refused} (e.g. {key!r}), which StyleShelf cannot apply; it applies "
                "LoRA, LoCon, LoHa, LoKr, DoRA and full diffs."
            )
        role = classify_key(key)
        if role is None:
            (unsupported if is_unsupported_adapter_key(key) else unknown).append(key)
            continue
        layouts[role.layout] += 1
        allowed = _ALPHA_DTYPES if role.part == "alpha" else WEIGHT_DTYPES
        if spec.dtype not in allowed:
            raise AdapterError(
                f"{name}: tensor {short_repr(key)} is {spec.dtype}; LoRA weights must be "
                f"{', '.join(WEIGHT_DTYPES.values())} (the file is damaged or another format)."
            )
        if role.part == "down":
            downs[role.module] = spec.shape
        elif role.part == "up":
            ups[role.module] = spec.shape
        else:
            if math.prod(spec.shape) != 1:
                raise AdapterError(
                    f"{name}: malformed LoRA — alpha {short_repr(key)} holds {math.prod(spec.shape)} values, not one."
                )
            alphas.add(role.module)
    algorithms = collections.Counter("lora" for _ in downs)
    for module, parts in lycoris.items():
        if module in downs or set(parts) <= {"dora_scale", "lora_mid"}:
            if module not in downs:
                raise AdapterError(f"{name}: {module} has {'/'.join(sorted(parts))} but no LoRA weights to go with it.")
            if "dora_scale" in parts:
                algorithms["dora"] += 1
            continue
        shapes = header_shape(parts)
        if shapes is None:
            raise AdapterError(f"{name}: malformed LyCORIS module {module} ({', '.join(sorted(parts))}).")
        downs[module], ups[module] = shapes
        algorithms[algorithm(set(parts))] += 1
    if unsupported:
        raise AdapterError(
            f"{name}: uses LoRA variants StyleShelf cannot apply yet "
            f"(e.g. {short_repr(unsupported[0])}: LoHa/LoKr/DoRA/OFT).",
        )
    if not downs:
        sample = next(iter(header.tensors), None)
        if sample is None:
            raise AdapterError(f"{name}: contains no tensors; not an adapter.")
        raise AdapterError(
            f"{name}: contains {len(header.tensors)} tensors but no LoRA weights (e.g. {short_repr(sample)}); "
            "it looks like a full model, VAE or other weights, not a LoRA adapter."
        )
    if unknown:
        raise AdapterError(
            f"{name}: mixes LoRA weights with {len(unknown)} other tensors (e.g. {short_repr(unknown[0])}); "
            "refusing a file we cannot fully read."
        )
    unpaired = sorted(set(downs) ^ set(ups))
    if unpaired:
        raise AdapterError(f"{name}: malformed LoRA — down/up weights not paired for {short_repr(unpaired[0])}.")
    for module, down in downs.items():
        up = ups[module]
        # A LoRA pair is [r, in(, kh, kw)] × [out, r(, 1, 1)] with r ≥ 1; anything else cannot be applied.
        if len(down) not in (2, 4) or len(up) != len(down) or down[0] == 0 or up[1] != down[0]:
            raise AdapterError(f"{name}: malformed LoRA — {module} has down {list(down)} and up {list(up)}.")
    main_layouts = [layout_name for layout_name, _ in layouts.most_common()]
    layout = main_layouts[0] if len(main_layouts) == 1 else "mixed: " + ", ".join(main_layouts)
    kinds = [k for k, _ in algorithms.most_common() if k != "lora" or len(algorithms) == 1]
    return {
        "layout": layout, "downs": downs, "ups": ups, "alphas": alphas, "algorithm": "+".join(kinds) or "lora",
        "warnings": _rank_warnings(downs, ups),
    }  # fmt: skip


def _rank_warnings(downs: dict[str, tuple[int, ...]], ups: dict[str, tuple[int, ...]]) -> list[str]:
    """A rank above min(in, out) adds nothing a full update could not: usually a mislabelled or padded file."""
    wide = []
    for module, down in downs.items():
        fan_in, fan_out = math.prod(down[1:]), ups[module][0]
        if down[0] > min(fan_in, fan_out):
            wide.append((module, down[0], fan_out, fan_in))
    if not wide:
        return []
    module, rank, fan_out, fan_in = wide[0]
    return [
        f"{len(wide)} module(s) have a rank wider than their layer (e.g. {module}: rank {rank} for a "
        f"{fan_out}×{fan_in} layer); the extra rank adds nothing but size."
    ]


def _thumbnail(meta: dict[str, str]) -> tuple[bytes | None, str]:
    uri = meta.get("modelspec.thumbnail", "")
    if not uri.startswith("data:") or "," not in uri:
        return None, ""
    head, payload = uri[5:].split(",", 1)
    mime = head.split(";")[0]
    try:
        return base64.b64decode(payload, validate=False), mime
    except (binascii.Error, ValueError):
        return None, ""


def _kohya_time(value: str) -> str:
    """kohya writes Unix times; show them as ISO dates like ``modelspec.date``."""
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(float(value), dt.timezone.utc).replace(microsecond=0).isoformat()
    except (ValueError, OverflowError, OSError):
        return value


def _tags(meta: dict[str, str]) -> list[str]:
    raw = meta.get("modelspec.tags", "")
    return [t.strip() for t in raw.split(",") if t.strip()]


def read_adapter_info(path: str | os.PathLike[str], *, with_hashes: bool = True) -> AdapterInfo:
    """Everything the shelf shows about an adapter, from the safetensors header only.

    ``with_hashes=False`` never reads tensor bytes (hashes are filled from the cache when known, else "").

    Raises AdapterError with the reason for pickles, truncated or malformed files and non-LoRA weights.
    """
    path = Path(path)
    header = read_header(path, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES)
    keys = analyse_keys(header, path.name)
    # Without hashing, still show hashes computed earlier (the cache is keyed by size + mtime).
    hashes = file_hashes(path, header) if with_hashes else (cached_hashes(path) or ("", ""))
    return _info(path, header, keys, hashes)


def read_adapter_snapshot(path: str | os.PathLike[str]) -> tuple[AdapterInfo, bytes]:
    """The info and the whole file's bytes, from ONE read: what loading tensors must use.

    Header, hashes and tensors then describe the same version of a file someone may be replacing
    (a team share), and the file is never memory-mapped (a mapped file truncated by another process
    kills this one with SIGBUS). A same-size rewrite inside one mtime tick escapes the stat check; the
    tensor hash recorded in the file catches it: on a mismatch the file is read again, and if the two
    reads differ it was changing.
    """
    path = Path(path)
    header, blob, st = read_file(path, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES)
    keys = analyse_keys(header, path.name)
    # A write during the read moves mtime to "now": only a file already modified within the current mtime
    # tick can change unseen. Older files with hashes cached for this exact version skip hashing.
    hashes = None if time.time() - st.st_mtime < _FRESH_S else cached_hashes(path, st)
    if hashes is None:
        hashes = _hashes_of(blob, header)
        if _recorded_hash(header.metadata) not in ("", hashes[1]):
            _, blob2, st = read_file(path, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES)
            if blob2 != blob:
                raise AdapterError(f"{path.name} changed while it was read; try again.", hint=CHANGED_HINT)
        remember_hashes(path, st, *hashes)
    return _info(path, header, keys, hashes), blob


_FRESH_S = 2.0  # mtime ticks are ~4 ms on Linux, up to 2 s on FAT: newer files are hashed on every read


def _hashes_of(blob: bytes, header: Header) -> tuple[str, str]:
    view = memoryview(blob)
    return hashlib.sha256(view).hexdigest(), hashlib.sha256(view[header.data_offset :]).hexdigest()


def _recorded_hash(meta: dict[str, str]) -> str:
    """The tensor hash the writer stored (ours and kohya's keys hold the data-section hash), or ""."""
    recorded = (meta.get("sshs_model_hash") or meta.get("modelspec.hash_sha256", "").removeprefix("0x")).lower()
    return recorded if len(recorded) == 64 else ""


def _info(path: Path, header: Header, keys: dict[str, Any], hashes: tuple[str, str]) -> AdapterInfo:
    meta = header.metadata
    downs: dict[str, tuple[int, ...]] = keys["downs"]
    components = collections.Counter(component_of(m) for m in downs)
    ranks = collections.Counter(shape[0] for shape in downs.values() if shape)
    found = family_from_metadata(meta)
    warnings: list[str] = list(keys["warnings"])
    if found:
        family, reason = found
        source = "metadata"
        shape_family, shape_reason = family_from_shapes({m: ("down", s) for m, s in downs.items()})
        if shape_family not in (UNKNOWN, family) and not (family == "sd2-v" and shape_family == "sd2"):
            warnings.append(f"metadata says {family} but the tensors look like {shape_family} ({shape_reason}).")
            if "cross-attention" in shape_reason:
                # The UNet's cross-attention width fixes what the file fits; a label from elsewhere can be wrong.
                family, reason, source = shape_family, f"{shape_reason}; mislabelled as {family} ({reason})", "shapes"
    else:
        family, reason = family_from_shapes({m: ("down", s) for m, s in downs.items()})
        source = "shapes" if family != UNKNOWN else UNKNOWN
        arch = meta.get("modelspec.architecture")
        if arch:
            reason = f"modelspec.architecture = {arch} is not a Stable Diffusion family StyleShelf knows; {reason}"
    full, tensor_hash = hashes
    thumb, mime = _thumbnail(meta)
    if tensor_hash and _recorded_hash(meta) not in ("", tensor_hash):
        # A mismatch means the tensor bytes changed after saving (damage, or an edit by a tool that
        # re-serialised the weights).
        warnings.append("the tensor data does not match the hash recorded when the file was saved.")
    date = meta.get("modelspec.date", "")
    if not date and meta.get("ss_training_started_at"):
        date = _kohya_time(meta["ss_training_started_at"])
    return AdapterInfo(
        path=str(path),
        title=meta.get("modelspec.title") or meta.get("ss_output_name") or path.stem,
        trigger_phrase=meta.get("modelspec.trigger_phrase", ""),
        family=family,
        family_source=source,
        family_reason=reason,
        rank=ranks.most_common(1)[0][0] if ranks else None,
        ranks=sorted(ranks),
        layout=keys["layout"],
        algorithm=keys["algorithm"],
        module_count=len(downs),
        components=dict(components),
        has_alpha=bool(keys["alphas"]) or "lora_adapter_metadata" in meta,
        description=meta.get("modelspec.description", ""),
        author=meta.get("modelspec.author", ""),
        date=date,
        tags=_tags(meta),
        thumbnail=thumb,
        thumbnail_mime=mime,
        file_size=header.file_size,
        sha256=full,
        autov2=full[:10],
        tensor_sha256=tensor_hash,
        metadata=meta,
        warnings=warnings,
    )


def tag_frequency(info: AdapterInfo) -> dict[str, int]:
    """Kohya's ``ss_tag_frequency`` ({folder: {tag: count}}) flattened, for display."""
    try:
        raw = json.loads(info.metadata.get("ss_tag_frequency", "{}"))
    except json.JSONDecodeError:
        return {}
    out: collections.Counter[str] = collections.Counter()
    if isinstance(raw, dict):
        for tags in raw.values():
            if isinstance(tags, dict):
                out.update({str(k): int(v) for k, v in tags.items() if isinstance(v, (int, float))})
    return dict(out.most_common())
