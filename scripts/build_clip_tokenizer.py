"""Build the CLIP BPE tokenizer files under assets/clip-tokenizer/ from open_clip's vocabulary.

Run once (the output is committed): ``python scripts/build_clip_tokenizer.py [WHEEL_OR_GZ]``.
Without an argument it fetches the ``open_clip_torch`` wheel with ``pip download --no-deps`` (a
registry is reachable when *building* the assets, never at run time) and reads
``open_clip/bpe_simple_vocab_16e6.txt.gz`` from it. open_clip itself is not a run-time dependency:
it pulls torchvision, which breaks beside the CPU torch wheel.

The vocabulary layout follows OpenAI's CLIP: 256 byte characters, the same with ``</w>``, one
entry per merge (48,894 merges), then ``<|startoftext|>`` and ``<|endoftext|>`` = 49,408 tokens.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "assets" / "clip-tokenizer"
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
MERGE_COUNT = 49152 - 256 - 2  # CLIP's vocab size minus byte tokens minus the two specials


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte→printable-character table, so every byte has a visible BPE symbol."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def read_bpe_text(source: Path | None) -> str:
    if source is not None and source.suffix == ".gz":
        return gzip.decompress(source.read_bytes()).decode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "open_clip_torch"],
                check=True,
            )
            source = next(Path(tmp).glob("open_clip_torch-*.whl"))
        with zipfile.ZipFile(source) as wheel:
            return gzip.decompress(wheel.read(BPE_MEMBER)).decode("utf-8")


def build(bpe_text: str, out_dir: Path) -> None:
    lines = bpe_text.split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(pair) for pair in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(pair) for pair in merges) + "\n"
    (out_dir / "merges.txt").write_text(merges_text, encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **special}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {out_dir}")


if __name__ == "__main__":
    build(read_bpe_text(Path(sys.argv[1]) if len(sys.argv) > 1 else None), OUT_DIR)
