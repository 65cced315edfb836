"""PNG files as other tools write them, for the tests that read generation parameters back."""

from __future__ import annotations

from PIL import Image
from PIL.PngImagePlugin import PngInfo

# What AUTOMATIC1111 writes into a PNG's "parameters" chunk (two prompt lines, a multi-line negative, quoted values).
A1111_TEXT = (
    "masterpiece, (harbour:1.2) at dawn, <lora:inkWash_v2:0.8>, watercolor <lora:paperTexture:0.4:0.6>\n"
    "a second prompt line\n"
    "Negative prompt: blurry, lowres\n"
    "text, watermark\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, Size: 512x768, "
    'Model hash: 6ce0161689, Model: "v1-5, pruned", VAE hash: 735e4c3a44, '
    'Lora hashes: "inkWash_v2: 0123456789, paperTexture: abcdef0123", Version: v1.10.1'
)


def a1111_png(path, text=A1111_TEXT, **chunks):
    info = PngInfo()
    if text is not None:
        info.add_text("parameters", text)
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8), (120, 30, 200)).save(path, pnginfo=info)
    return path
