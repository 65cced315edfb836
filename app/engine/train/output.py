"""What a run leaves behind: the adapter file with its metadata, and the speed figures of the summary."""

from __future__ import annotations

import collections
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.adapters.writer import lycoris_args, num_text
from app.engine.events import TrainSummary
from app.engine.train.config import TrainConfig

# TrainConfig fields that hold a path on the training machine: only their last name goes into a shared file.
PATH_FIELDS = ("dataset_dir", "base", "out")


def adapter_metadata(
    cfg: TrainConfig,
    *,
    step: int,
    train_images: int,
    out: Path,
    tag_frequency: dict[str, dict[str, int]],
    summary: TrainSummary,
    run: RunFacts | None = None,
) -> dict[str, str]:
    """kohya's ``ss_*`` training fields (read by AUTOMATIC1111 and Civitai) plus our config and validation.

    The file is meant to be shared, so nothing in it names a place on the training machine: folders and
    files appear by their last name only (as kohya writes ``ss_sd_model_name``), the base by its hash.
    """
    return {
        **(kohya_run_fields(cfg, run) if run is not None else {}),
        **(network_fields(cfg) if cfg.network != "lora" else {}),  # a checkpoint export (no run) must say it too
        "ss_resolution": f"({cfg.resolution}, {cfg.resolution})",
        "ss_steps": str(step),
        "ss_learning_rate": str(cfg.learning_rate),
        "ss_num_train_images": str(train_images),
        "ss_tag_frequency": json.dumps(tag_frequency, ensure_ascii=False),
        "ss_output_name": out.stem,
        "ss_seed": str(cfg.seed),
        "ss_lr_scheduler": cfg.lr_schedule,
        "ss_min_snr_gamma": str(cfg.min_snr_gamma),
        "ss_noise_offset": str(cfg.noise_offset),
        "ss_caption_dropout_rate": str(cfg.caption_dropout),
        "styleshelf.train_config": shareable_config_toml(cfg),
        "styleshelf.validation": json.dumps(
            {
                k: getattr(summary, k)
                for k in ("validation_loss_base", "validation_loss_adapter", "validation_images", "validation_held_out")
            }
        ),
    }


@dataclass
class RunFacts:
    """What only the run knows: when it ran, the images per folder and per bucket, a random session id."""

    started_at: float  # Unix time, as kohya writes it
    finished_at: float
    images_per_folder: dict[str, int]  # folder name → images trained on (kohya's ss_dataset_dirs)
    buckets: list[tuple[int, int]]  # (width, height) of every training sample
    family: str
    session_id: int = field(default_factory=lambda: random.SystemRandom().randint(0, 2**32 - 1))


def kohya_run_fields(cfg: TrainConfig, run: RunFacts) -> dict[str, str]:
    """The ``ss_*`` fields AUTOMATIC1111's metadata panel shows (model, clip skip, dates, resolution, dataset
    size), in kohya's own encodings: Unix times, JSON for buckets and folders, strings for numbers."""
    counts = collections.Counter(run.buckets)
    buckets = {str(i): {"resolution": [w, h], "count": n} for i, ((w, h), n) in enumerate(sorted(counts.items()))}
    return {
        "ss_session_id": str(run.session_id),
        "ss_training_started_at": repr(float(run.started_at)),
        "ss_training_finished_at": repr(float(run.finished_at)),
        "ss_sd_model_name": Path(cfg.base).name,
        # SD1/SD2 train on the text encoder's last layer (A1111's clip skip 1); SDXL on the penultimate one (2).
        "ss_clip_skip": "2" if run.family == "sdxl" else "1",
        "ss_bucket_info": json.dumps({"buckets": buckets, "mean_img_ar_error": 0.0}),
        "ss_dataset_dirs": json.dumps(
            {name: {"n_repeats": 1, "img_count": n} for name, n in sorted(run.images_per_folder.items())},
            ensure_ascii=False,
        ),
        **network_fields(cfg),
        "ss_batch_size_per_device": str(cfg.batch_size),
        "ss_gradient_accumulation_steps": str(cfg.gradient_accumulation),
        "ss_max_train_steps": str(cfg.steps),
        "ss_unet_lr": str(cfg.learning_rate),
        "ss_text_encoder_lr": str(cfg.text_encoder_lr) if cfg.train_text_encoder else "0",
        "ss_optimizer": cfg.optimizer,
        "ss_network_dropout": "None",
        "ss_training_comment": cfg.description,
    }


def network_fields(cfg: TrainConfig) -> dict[str, str]:
    """kohya's ``ss_network_module`` / ``ss_network_args``: LoRA is sd-scripts' ``networks.lora`` (the module
    name the writer sets), DoRA and LoKr are LyCORIS' ``lycoris.kohya`` with its ``algo`` and options."""
    conv = cfg.lora_targets.endswith("conv")
    args = {"conv_dim": str(cfg.rank), "conv_alpha": num_text(cfg.resolved_alpha())} if conv else {}
    if cfg.network == "lora":
        return {"ss_network_args": json.dumps(args)}
    return {
        "ss_network_module": "lycoris.kohya",
        "ss_network_args": json.dumps({**args, **lycoris_args(cfg.network, factor=cfg.lokr_factor)}),
    }


def images_per_folder(paths: list[Path], root: Path) -> dict[str, int]:
    """Images per folder, named as ``ss_tag_frequency`` names them (the sub-folder's name, or the dataset's)."""
    root = Path(root).expanduser()
    return dict(collections.Counter(p.parent.name if p.parent != root else root.name for p in paths))


def shareable_config_toml(cfg: TrainConfig) -> str:
    """The run's settings with every path cut to its last name, and the base model's A1111 hash beside it."""
    import tomli_w

    from app.engine.generate.identity import base_model_hash

    data = cfg.to_dict()
    for key in PATH_FIELDS:
        data[key] = Path(data[key]).name if data[key] else ""
    data["base_hash"] = base_model_hash(Path(cfg.base).expanduser()) if cfg.base else ""
    return tomli_w.dumps(data)


def write_adapter(
    cfg: TrainConfig, out: Path, states: dict[str, dict], *, family: str, thumbnail, extra: dict[str, str]
) -> Path:
    """Kohya-layout adapter through the shared writer (atomic, fp32, ModelSpec metadata)."""
    from app.engine.adapters import save_adapter

    return save_adapter(
        out,
        unet=states["unet"],
        text_encoder=states.get("text_encoder"),
        text_encoder_2=states.get("text_encoder_2"),
        rank=cfg.rank,
        alpha=cfg.resolved_alpha(),
        family=family,
        title=cfg.name,
        trigger_phrase=cfg.trigger,
        thumbnail=thumbnail,
        description=cfg.description,
        extra_metadata=extra,
    )


def smoothed_loss(losses: list[float]) -> float | None:
    """The running average the progress events carry, rebuilt from a resumed run's history."""
    smoothed = None
    for value in losses:
        smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
    return smoothed


def weights_checksum(states: dict[str, dict]) -> str:
    """A short hash of all LoRA tensors: equal on every rank of a healthy data-parallel run."""
    digest = hashlib.sha256()
    for part in sorted(states):
        for key in sorted(states[part]):
            digest.update(key.encode())
            digest.update(states[part][key].numpy().tobytes())
    return digest.hexdigest()[:16]
