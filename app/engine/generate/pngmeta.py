"""Generation parameters inside PNGs: AUTOMATIC1111's ``parameters`` text and our own JSON chunk.

The ``parameters`` chunk makes our images readable by A1111, Civitai and other tools (prompt with
``<lora:name:weight>`` tags, ``Negative prompt:``, then one ``Key: value, …`` line). The ``styleshelf``
chunk keeps what that format loses: the exact config and each adapter's tensor hash, so a stack is
restored by hash even after files were renamed. Files are named by file name and hash, never by path
(``shareable``); the absolute paths older versions wrote are still read. Plain A1111 PNGs (``parameters``
only) are read too.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from app.engine.atomic import atomic_write_bytes
from app.engine.errors import UserError
from app.engine.generate.input_meta import restore_from_a1111, restore_from_record
from app.engine.generate.samplers import canonical_sampler
from app.engine.shelf.stack import StackEntry

OUR_CHUNK = "styleshelf"
A1111_CHUNK = "parameters"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LoraRef:
    """How an image names one adapter; a lookup turns it back into a file."""

    name: str
    sha256: str = ""  # tensor hash (our chunk only)
    autov2: str = ""  # full-file hash prefix (A1111's "Lora hashes")


AdapterLookup = Callable[[LoraRef], "str | None"]


@dataclass(frozen=True)
class LoraUse:
    name: str
    weight: float
    text_encoder_weight: float | None
    autov2: str


# ------------------------------------------------------------------------------------------ writing
def _num(value: float) -> str:
    return f"{float(value):g}"


def _quote(value: str) -> str:
    # A1111 JSON-quotes values that would break its "Key: value, …" line.
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',:"\n') else value


def lora_tag(use: LoraUse) -> str:
    # A1111: <lora:name:w> sets both parts; <lora:name:te:unet> sets them separately.
    if use.text_encoder_weight is None or use.text_encoder_weight == use.weight:
        return f"<lora:{use.name}:{_num(use.weight)}>"
    return f"<lora:{use.name}:{_num(use.text_encoder_weight)}:{_num(use.weight)}>"


def a1111_parameters(
    *,
    prompt: str,
    negative: str,
    steps: int,
    sampler: str,
    guidance: float,
    seed: int,
    width: int,
    height: int,
    model_hash: str,
    model_name: str,
    loras: list[LoraUse],
    extra: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> str:
    first = " ".join([prompt.strip(), *(lora_tag(u) for u in loras)]).strip()
    lines = [first]
    if negative.strip():
        lines.append(f"Negative prompt: {negative.strip()}")
    fields = [
        ("Steps", str(steps)),
        ("Sampler", sampler),
        ("CFG scale", _num(guidance)),
        ("Seed", str(seed)),
        ("Size", f"{width}x{height}"),
    ]
    if model_hash:
        fields.append(("Model hash", model_hash))
    if model_name:
        fields.append(("Model", model_name))
    fields += list(extra)  # img2img / inpaint settings, where A1111 puts them
    if loras:
        fields.append(("Lora hashes", json.dumps(", ".join(f"{u.name}: {u.autov2}" for u in loras))))
    lines.append(", ".join(f"{k}: {v if v.startswith(chr(34)) else _quote(v)}" for k, v in fields))
    return "\n".join(lines)


def png_bytes(image: Any, parameters: str, record: dict[str, Any]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(A1111_CHUNK, parameters)
    info.add_itxt(OUR_CHUNK, json.dumps(record, ensure_ascii=False, sort_keys=True), zip=True)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png(target: str | Path, image: Any, parameters: str, record: dict[str, Any]) -> Path:
    """Write the image with both chunks atomically (a crash never leaves a half PNG in the gallery)."""
    atomic_write_bytes(target, png_bytes(image, parameters, record))
    return Path(target)


# ------------------------------------------------------------------------------------------ reading
def read_png_text(path: str | Path) -> dict[str, str]:
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return {str(k): str(v) for k, v in getattr(img, "text", {}).items()}
    except FileNotFoundError:
        raise UserError(f"Image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise UserError(f"{path.name}: not a readable image ({err}).") from None


_KV = re.compile(r'\s*([A-Za-z][\w \-/]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_LORA = re.compile(r"<lora:([^:>]+)((?::[^:>]*)*)>")


def parse_a1111(text: str) -> dict[str, Any]:
    """Split an A1111 ``parameters`` string into prompt, negative and its key/value fields."""
    lines = text.strip().split("\n")
    fields: dict[str, str] = {}
    if lines and len(_KV.findall(lines[-1])) >= 3 and "Steps:" in lines[-1]:
        for key, value in _KV.findall(lines.pop()):
            value = value.strip()
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    value = value[1:-1]
            fields[key.strip()] = value
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:") :].lstrip()
        target.append(line)
    return {"prompt": "\n".join(prompt_lines).strip(), "negative": "\n".join(negative_lines).strip(), "fields": fields}


def split_lora_tags(prompt: str) -> tuple[str, list[tuple[str, float, float | None]]]:
    """Remove ``<lora:…>`` tags: (clean prompt, [(name, unet weight, text-encoder weight or None)])."""
    found: list[tuple[str, float, float | None]] = []
    for match in _LORA.finditer(prompt):
        numbers = [p for p in match.group(2).split(":") if p.strip()]
        try:
            values = [float(p) for p in numbers[:2]]
        except ValueError:
            values = []
        if not values:
            found.append((match.group(1), 1.0, None))
        elif len(values) == 1:
            found.append((match.group(1), values[0], None))
        else:  # A1111 order: text-encoder multiplier first, then UNet
            found.append((match.group(1), values[1], values[0]))
    lines = []
    for line in _LORA.sub("", prompt).split("\n"):
        line = re.sub(r",(\s*,)+", ",", line)  # "dawn, <lora:x:1>, ink" leaves an empty list item
        lines.append(re.sub(r"[ \t]{2,}", " ", line).strip().strip(",").strip())
    return "\n".join(lines).strip(), found


def _resolve(ref: LoraRef, lookup: AdapterLookup | None, recorded_path: str = "") -> str:
    if lookup is not None:
        found = lookup(ref)
        if found:
            return str(found)
    if recorded_path and Path(recorded_path).is_file() and ref.sha256:
        from app.engine.generate.identity import adapter_identity

        try:
            if adapter_identity(recorded_path).tensor_sha256 == ref.sha256:
                return recorded_path
        except UserError:
            pass
    return ""


def read_png_parameters(
    path: str | Path, lookup: AdapterLookup | None = None
) -> tuple[dict[str, Any], list[StackEntry]]:
    """Settings (GenerateConfig field names) and the stack stored in a PNG.

    ``lookup`` maps a ``LoraRef`` (name, tensor sha256, AutoV2) to an adapter file on the shelf; an entry
    that cannot be found keeps its name and hash with ``path=""`` so the caller can show it as missing.
    """
    text = read_png_text(path)
    if OUR_CHUNK in text:
        try:
            record = json.loads(text[OUR_CHUNK])
            return _from_record(record, lookup, Path(path).parent)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            pass  # damaged chunk: the A1111 text is still there
    if A1111_CHUNK in text:
        return _from_a1111(text[A1111_CHUNK], lookup)
    raise UserError(f"{Path(path).name}: no generation parameters stored in this image.")


_CONFIG_KEYS = ("prompt", "negative", "seed", "steps", "guidance", "width", "height", "sampler", "insert_triggers")


def _from_record(
    record: dict[str, Any], lookup: AdapterLookup | None, png_folder: Path | None = None
) -> tuple[dict[str, Any], list[StackEntry]]:
    config = record["config"]
    settings = {k: config[k] for k in _CONFIG_KEYS if k in config}
    settings["batch_count"] = 1  # the record describes this one image (its own seed)
    restore_from_record(record, settings, png_folder)
    return settings, record_stack(record.get("stack", []), lookup)


def record_stack(items: list[dict[str, Any]], lookup: AdapterLookup | None) -> list[StackEntry]:
    """A record's stack entries, each found on the shelf by tensor hash, else by title, else by file name."""
    entries = []
    for item in items:
        ref = LoraRef(name=item.get("name", ""), sha256=item.get("sha256", ""), autov2=item.get("autov2", ""))
        entry = StackEntry.from_dict({**item, "path": ""})
        entry.path = _resolve(ref, lookup, item.get("path", ""))  # "path": records of older versions
        stem = Path(str(item.get("file") or "")).stem
        if not entry.path and stem and lookup is not None and stem != ref.name:
            entry.path = _resolve(LoraRef(name=stem, sha256=ref.sha256, autov2=ref.autov2), lookup)
        entries.append(entry)
    return entries


def _from_a1111(text: str, lookup: AdapterLookup | None) -> tuple[dict[str, Any], list[StackEntry]]:
    parsed = parse_a1111(text)
    fields = parsed["fields"]
    prompt, tags = split_lora_tags(parsed["prompt"])
    settings: dict[str, Any] = {"prompt": prompt, "negative": parsed["negative"], "insert_triggers": False}
    settings["batch_count"] = 1

    def put(key: str, field: str, conv: Callable[[str], Any]) -> None:
        if field in fields:
            try:
                settings[key] = conv(fields[field])
            except ValueError:
                pass

    put("steps", "Steps", int)
    put("guidance", "CFG scale", float)
    put("seed", "Seed", int)
    if "Size" in fields and re.fullmatch(r"\d+x\d+", fields["Size"].strip()):
        w, h = fields["Size"].strip().split("x")
        settings["width"], settings["height"] = int(w), int(h)
    sampler = canonical_sampler(fields.get("Sampler", ""), fields.get("Schedule type", ""))
    if sampler:
        settings["sampler"] = sampler
    restore_from_a1111(fields, settings)
    hashes: dict[str, str] = {}
    for part in fields.get("Lora hashes", "").split(","):
        if ":" in part:
            name, value = part.rsplit(":", 1)
            hashes[name.strip()] = value.strip()
    entries = []
    for name, weight, te_weight in tags:
        ref = LoraRef(name=name, autov2=hashes.get(name, ""))
        entries.append(
            StackEntry(
                path=_resolve(ref, lookup), enabled=True, weight=weight, text_encoder_weight=te_weight, name=name
            )
        )
    return settings, entries
