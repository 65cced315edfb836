"""GPU memory: a rough peak estimate before training, and an out-of-memory message that says what to lower."""

from __future__ import annotations

import torch

from app.engine.errors import UserError

# Activation memory of one 64×64-latent (512 px) sample through the UNet forward+backward, in bytes, per
# parameter-billion of UNet, in half precision. A conservative fit to published SD1.5 (0.86 B) LoRA runs
# (~6 GB at batch 1 without checkpointing); checkpointing keeps roughly a fifth.
_ACT_BYTES_PER_SAMPLE_PER_BPARAM_512 = 5.5e9
_CHECKPOINTING_FACTOR = 0.2


def estimate_peak_bytes(
    *,
    unet_params: int,
    other_params_on_device: int,
    lora_params: int,
    weight_bytes: int,
    batch_size: int,
    resolution: int,
    gradient_checkpointing: bool,
) -> int:
    weights = (unet_params + other_params_on_device) * weight_bytes
    # LoRA: fp32 weight + grad + two AdamW moments (Adafactor keeps less; the LoRA share is small either way).
    lora = lora_params * 4 * 4
    act = _ACT_BYTES_PER_SAMPLE_PER_BPARAM_512 * (unet_params / 1e9) * batch_size * (resolution / 512) ** 2
    act *= weight_bytes / 2  # fp32 activations are twice the half-precision ones
    if gradient_checkpointing:
        act *= _CHECKPOINTING_FACTOR
    return int((weights + lora + act) * 1.1)  # + allocator fragmentation


def preflight_warning(estimate: int, device: torch.device) -> str | None:
    """A warning line when the estimate exceeds the free memory of ``device`` (CUDA only)."""
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    if estimate <= free:
        return None
    return (
        f"Estimated peak GPU memory {estimate / 2**30:.1f} GiB is more than the {free / 2**30:.1f} GiB free "
        f"(of {total / 2**30:.1f} GiB). {LOWER_HINT}"
    )


LOWER_HINT = (
    "Lower the batch size or the resolution, lower the rank, or turn on gradient checkpointing "
    "(and use bf16/fp16 mixed precision)."
)


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def out_of_memory_error(*, batch_size: int, resolution: int, rank: int, checkpointing: bool) -> UserError:
    tips = [f"batch size (now {batch_size})", f"resolution (now {resolution})", f"rank (now {rank})"]
    if not checkpointing:
        tips.append("or turn on gradient checkpointing")
    return UserError("Ran out of memory while training.", hint="Lower the " + ", ".join(tips) + ".", details=LOWER_HINT)
