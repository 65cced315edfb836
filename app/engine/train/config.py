"""The training settings: one typed dataclass the GUI turns into a form, the CLI into flags, TOML into a run.

Import-light on purpose (no torch): the GUI reads ``describe(TrainConfig)`` at start-up.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.configbase import Settings, from_dict, setting, validate
from app.engine.errors import DatasetError, ModelLoadError, UserError

LORA_TARGETS = ("attention", "attention+ff", "attention+ff+conv")
SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("adamw", "adafactor")
PRECISIONS = ("auto", "no", "fp16", "bf16")
PREDICTIONS = ("auto", "epsilon", "v_prediction")
NETWORKS = ("lora", "dora", "lokr")  # adapter kinds (app.engine.train.lora builds them)


@dataclass
class TrainConfig(Settings):
    # --- the common ones (shown first in the GUI) ---
    # Help texts become the form's tooltips and the CLI's help: say what a setting does and when to change it.
    # Each field is also a CLI flag (``flag=`` renames it) and a TOML key; ``same_on_resume`` marks what a
    # checkpoint's run must share to be continued.
    name: str = setting(
        "my-style",
        "Name of the style, shown on the shelf and used as the file name. "
        "Follows the chosen folder unless you type your own",
    )
    dataset_dir: str = setting("", "Folder of training images (.txt captions beside them are used)", cli=False)
    base: str = setting(
        "", "Base model: a diffusers folder or a single .safetensors checkpoint", same_on_resume=True, metavar="MODEL"
    )
    out: str = setting(
        "",
        "Adapter file to write (.safetensors); empty = <user data>/adapters/<name>.safetensors",
        metavar="ADAPTER.safetensors",
    )
    trigger: str = setting(
        "",
        "A rare word put in front of every caption and stored in the adapter; write it in "
        "prompts to call the style up. Leave empty if the style should apply without one",
    )
    steps: int = setting(
        1000,
        "How long to train: one step = one batch of images. More steps learn the style "
        "more strongly; raise it when samples look too little like your images, lower it when "
        "they copy them",
        minimum=1,
        maximum=200_000,
    )
    rank: int = setting(
        16,
        "Capacity of the adapter (and its file size). 4–16 is plenty for a look or palette; "
        "raise to 32 for styles with fine detail",
        minimum=1,
        maximum=256,
        same_on_resume=True,
    )
    learning_rate: float = setting(
        1e-4,
        "How big each learning step is. Lower it if the loss curve jumps around "
        "or samples turn to noise; raise it if nothing changes after many steps",
        minimum=1e-7,
        maximum=1.0,
        same_on_resume=True,
        flag="lr",
    )
    resolution: int = setting(
        512,
        "Size images are trained at, in pixels (follows the base model: 512 for SD1, "
        "1024 for SDXL). Lower it only to save memory or time",
        minimum=32,
        maximum=2048,
        same_on_resume=True,
    )
    batch_size: int = setting(
        1,
        "Images per step. Larger batches give a smoother curve but need more memory; "
        "lower it if training runs out of memory",
        minimum=1,
        maximum=64,
        same_on_resume=True,
    )

    # --- advanced ---
    alpha: float = setting(
        0.0,
        "Scales the adapter's update by alpha / rank. 0 = same as rank (scale 1). Half the rank is a common "
        "choice that makes training gentler",
        minimum=0,
        maximum=1024,
        advanced=True,
        same_on_resume=True,
    )
    network: str = setting(
        "lora",
        "The kind of adapter. LoRA: the standard, read by every tool. DoRA: LoRA plus a learned strength "
        "per output channel, often closer to full fine-tuning at the same rank; slower steps. LoKr (LyCORIS): a "
        "Kronecker product, much smaller files; wants a higher learning rate (about 4×). DoRA and LoKr files use "
        "LyCORIS' layout: ComfyUI and LyCORIS read both, AUTOMATIC1111 reads LoKr, plain diffusers neither",
        choices=NETWORKS,
        advanced=True,
        same_on_resume=True,
    )
    lokr_factor: int = setting(
        -1,
        "LoKr only: how each layer is split into the two Kronecker halves. -1 = as square as possible "
        "(kohya/LyCORIS default); a number such as 4, 8 or 16 (as kohya recipes give) makes the small half that "
        "size",
        minimum=-1,
        maximum=1024,
        advanced=True,
        label="LoKr factor",
        same_on_resume=True,
    )
    seed: int = setting(
        42,
        "Random seed: the same seed and settings give the same adapter on a CPU. Change it "
        "to try another run of the same settings",
        minimum=0,
        maximum=2**31 - 1,
        advanced=True,
        same_on_resume=True,
    )
    lora_targets: str = setting(
        "attention",
        "Which layers learn: attention only (lightest, colour and mood), + feed-forward, + "
        "convolutions (needed for textures such as stripes or outlines)",
        choices=LORA_TARGETS,
        advanced=True,
        same_on_resume=True,
    )
    train_text_encoder: bool = setting(
        False,
        "Also adapt the text encoder, so words themselves pick up the style. Slower (captions are then "
        "not cached); try it when the trigger word alone does not call the style up",
        advanced=True,
        same_on_resume=True,
    )
    text_encoder_lr: float = setting(
        5e-5,
        "Learning rate of the text-encoder part (only when it is trained); keep it below the UNet's",
        minimum=1e-7,
        maximum=1.0,
        advanced=True,
        same_on_resume=True,
    )
    gradient_accumulation: int = setting(
        1,
        "Batches added up before each learning step: a larger effective "
        "batch without more memory. Raise it when a bigger batch does not fit",
        minimum=1,
        maximum=256,
        advanced=True,
        same_on_resume=True,
    )
    optimizer: str = setting(
        "adamw",
        "AdamW (standard), or Adafactor: far smaller optimiser memory, for big ranks on small GPUs",
        choices=OPTIMIZERS,
        advanced=True,
        same_on_resume=True,
    )
    lr_schedule: str = setting(
        "constant",
        "How the learning rate changes over the run: constant, or falling "
        "off (cosine, linear) for a smoother finish on long runs",
        choices=SCHEDULES,
        advanced=True,
        same_on_resume=True,
    )
    warmup_steps: int = setting(
        0,
        "Steps at the start over which the learning rate ramps up from 0; a few "
        "dozen steady the start of high-rate runs",
        minimum=0,
        maximum=100_000,
        advanced=True,
        same_on_resume=True,
    )
    weight_decay: float = setting(
        1e-2,
        "Pulls the adapter's weights gently toward zero; rarely worth changing",
        minimum=0,
        maximum=1.0,
        advanced=True,
        same_on_resume=True,
    )
    max_grad_norm: float = setting(
        1.0,
        "Caps each step's update (gradient clipping; 0 = off); lower it if the loss spikes",
        minimum=0,
        maximum=1000,
        advanced=True,
    )
    mixed_precision: str = setting(
        "auto",
        "Weights' precision on a GPU (the adapter stays fp32); auto = bf16 if supported else fp16. "
        "CPU training is always fp32",
        choices=PRECISIONS,
        advanced=True,
    )
    gradient_checkpointing: bool = setting(
        False,
        "Uses much less GPU memory for about 30 % more time; turn on when training runs out of memory",
        advanced=True,
    )
    min_snr_gamma: float = setting(
        5.0,
        "Min-SNR-γ loss weighting (0 = off): steadier, faster training; 5 works for nearly everything",
        minimum=0,
        maximum=100,
        advanced=True,
        same_on_resume=True,
    )
    caption_dropout: float = setting(
        0.0,
        "Share of captions replaced by an empty one while training (kohya's caption_dropout_rate): the style "
        "then also shapes the unconditional half of guidance (CFG), so high guidance does not wash it out",
        minimum=0,
        maximum=1.0,
        advanced=True,
        same_on_resume=True,
    )
    preserve_unconditional: float = setting(
        0.0,
        "Keeps the adapter's prediction for an empty prompt (guidance's unconditional half) at the base model's: "
        "the style then comes from the prompt side only, guidance (CFG) amplifies it, and it shows at low "
        "strengths too. Try 1 for a style that only appears near strength 1; use it instead of caption dropout. "
        "Each step costs about 1.5× as much",
        minimum=0,
        maximum=10.0,
        advanced=True,
        same_on_resume=True,
    )
    partial_strength: float = setting(
        0.0,
        "Share of steps that train the adapter at a random weight below 1 toward the same share of its look, so "
        "a shelf weight of 0.5 shows about half the style instead of almost none. Try 0.8 (with more steps) for a "
        "style that only appears near strength 1. Those steps cost about 1.5× as much",
        minimum=0,
        maximum=1.0,
        advanced=True,
        same_on_resume=True,
    )
    noise_offset: float = setting(
        0.0,
        "Lets the adapter learn very dark or very bright pictures (0.05 is typical); leave at 0 for ordinary styles",
        minimum=0,
        maximum=1.0,
        advanced=True,
        same_on_resume=True,
    )
    prediction_type: str = setting(
        "auto",
        "What the model is trained to predict; auto = the base model's own. "
        "Change only for a base whose config states it wrongly",
        choices=PREDICTIONS,
        advanced=True,
        same_on_resume=True,
    )
    cache_latents: bool = setting(
        True,
        "Encode images and captions once and reuse them (much faster); turn off only for random crops",
        advanced=True,
        flag="cache",
    )
    random_crop: bool = setting(
        False,
        "Crop images at a random place each time instead of the centre (needs "
        "caching off); helps when subjects sit off-centre",
        advanced=True,
    )
    flip: bool = setting(
        False,
        "Also train on mirrored images: twice the material for styles that look the same "
        "mirrored; leave off for text or asymmetric motifs",
        advanced=True,
        same_on_resume=True,
    )
    bucket_step: int = setting(
        64,
        "Image sizes are grouped in steps of this many pixels so wide and tall images "
        "keep their shape; rarely worth changing",
        minimum=8,
        maximum=256,
        advanced=True,
        same_on_resume=True,
    )
    max_upscale: float = setting(
        1.0,
        "Never enlarge an image by more than this factor to fill its size group (enlarged images look soft)",
        minimum=1.0,
        maximum=8.0,
        advanced=True,
    )
    min_image_side: int = setting(
        64,
        "Images whose shorter side is smaller than this (pixels) are skipped",
        minimum=1,
        maximum=4096,
        advanced=True,
    )
    max_image_pixels: int = setting(
        80_000_000,
        "Images with more pixels are skipped (guards against decompression bombs)",
        minimum=1,
        maximum=1_000_000_000,
        advanced=True,
    )
    background: str = setting(
        "white",
        "What fills transparent areas: white, or the image's mean colour",
        choices=("white", "mean"),
        advanced=True,
    )
    filename_captions: bool = setting(
        True, "Use the cleaned file name as the caption when an image has no .txt beside it", advanced=True
    )
    validation_images: int = setting(
        0,
        "Images kept out of training to judge what the adapter learned (0 = judge on up to 4 training "
        "images). Hold some out when you have 20 or more",
        minimum=0,
        maximum=64,
        advanced=True,
    )
    sample_count: int = setting(
        0,
        "How many times sample pictures are drawn during the run, evenly spaced (0 = only the final one for "
        "the thumbnail). Each shows base vs adapter side by side; each round costs a few seconds",
        minimum=0,
        maximum=100,
        advanced=True,
    )
    sample_every: int = setting(
        0, "Draw samples every N steps instead (0 = use the sample count)", minimum=0, maximum=100_000, advanced=True
    )
    sample_prompts: list[str] = setting(
        [],
        "Prompts for samples (empty = two of the dataset's own captions, trigger included)",
        advanced=True,
        flag="sample-prompt",
    )
    sample_steps: int = setting(
        20, "Denoising steps per sample: fewer is faster, more is cleaner", minimum=1, maximum=150, advanced=True
    )
    sample_resolution: int = setting(
        0, "Sample size in pixels (0 = training resolution)", minimum=0, maximum=2048, advanced=True
    )
    thumbnail: bool = setting(
        True, "Embed the best-looking sample as the adapter's 256 px shelf picture", advanced=True
    )
    checkpoint_every: int = setting(
        250,
        "Save a resumable checkpoint every N steps (0 = only at the end or on "
        "Cancel); lower it if your computer may stop mid-run",
        minimum=0,
        maximum=100_000,
        advanced=True,
    )
    keep_checkpoints: int = setting(
        2, "How many checkpoints are kept (the oldest are deleted)", minimum=1, maximum=100, advanced=True
    )
    resume: bool = setting(False, "Continue from the newest checkpoint of this run", advanced=True)
    description: str = setting("", "Free text stored in the adapter (shown by other tools too)", advanced=True)
    cpu_threads: int = setting(
        0,
        "CPU threads for training on a CPU (0 = PyTorch's default). 1 is often fastest for small models or "
        "when other work shares the cores",
        minimum=0,
        maximum=256,
        advanced=True,
    )

    def resolved_out(self) -> Path:
        if self.out:
            return Path(self.out).expanduser()
        from app.engine.paths import user_data_dir
        from app.engine.shelf.names import adapter_file_name

        return user_data_dir() / "adapters" / adapter_file_name(self.name)

    def resolved_alpha(self) -> float:
        return float(self.alpha) if self.alpha > 0 else float(self.rank)

    def checkpoint_dir(self) -> Path:
        out = self.resolved_out()
        return out.with_name(out.stem + ".checkpoints")

    def samples_dir(self) -> Path:
        out = self.resolved_out()
        return out.with_name(out.stem + ".samples")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def check(self) -> None:
        """Validate ranges (again: a form edits a config in place) and the combinations a range cannot express,
        and that the files exist; raise UserError naming the field."""
        validate(self)
        if not self.dataset_dir:
            raise UserError("No dataset folder given.", hint="Pass DATASET_DIR (a folder of images).")
        if not self.base:
            raise UserError("No base model given.", hint="Pass --base MODEL (a diffusers folder or .safetensors).")
        if self.random_crop and self.cache_latents:
            raise UserError(
                "Random crop needs latent caching off (a cached latent has one fixed crop).",
                hint="Turn off cache_latents or random_crop.",
            )
        if self.caption_dropout > 0 and self.preserve_unconditional > 0:
            raise UserError(
                "Caption dropout and unconditional preservation pull the empty prompt in opposite directions.",
                hint="Set caption_dropout to 0 when preserve_unconditional is on (or the other way round).",
            )
        if self.partial_strength > 0 and self.train_text_encoder:
            raise UserError(
                "Partial-strength training adapts the UNet only; it cannot be combined with text-encoder training.",
                hint="Turn off train_text_encoder or set partial_strength to 0.",
            )
        if self.partial_strength > 0 and self.preserve_unconditional > 0:
            raise UserError(
                "Partial-strength training and unconditional preservation cannot be combined (yet).",
                hint="Use one of them: set partial_strength or preserve_unconditional to 0.",
            )
        if self.lokr_factor == 0:
            raise UserError("lokr_factor 0 is not a factor.", hint="Use -1 (as square as possible) or 1 and up.")
        if self.resolution % 8:
            raise UserError(f"Resolution must be a multiple of 8 (got {self.resolution}).")
        if self.resolved_out().suffix != ".safetensors":
            raise UserError(f"The adapter file must end in .safetensors (got {self.resolved_out().name}).")
        if not Path(self.dataset_dir).expanduser().is_dir():
            raise DatasetError(f"Dataset folder not found: {self.dataset_dir}")
        if not Path(self.base).expanduser().exists():
            raise ModelLoadError(
                f"Base model not found: {self.base}", hint="Pass a diffusers folder or a .safetensors checkpoint."
            )


# Presets are plain data so the GUI can list them and a TOML file can name one.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "fast style": {
        "steps": 600,
        "rank": 8,
        "learning_rate": 4e-4,
        "resolution": 512,
        "batch_size": 2,
        "lr_schedule": "constant",
        "warmup_steps": 20,
        "min_snr_gamma": 5.0,
        "cache_latents": True,
        "checkpoint_every": 200,
        "sample_count": 4,
    },
    # What trained the bundled example styles on the 64 px demo model (scripts/make_style_sets.py): a small model
    # needs a high learning rate, and stripes/outlines need LoRA on the convolutions; caption dropout keeps the
    # look under guidance, partial-strength steps make weight 0.5 show half of it. The Train tab picks it when the
    # demo model is the base.
    "demo model": {
        "steps": 1500,
        "partial_strength": 0.8,
        "rank": 8,
        "learning_rate": 1e-3,
        "resolution": 64,
        "batch_size": 4,
        "lora_targets": "attention+ff+conv",
        "caption_dropout": 0.3,
        "lr_schedule": "constant",
        "warmup_steps": 0,
        "min_snr_gamma": 5.0,
        "cache_latents": True,
        "checkpoint_every": 200,
        "sample_count": 4,
    },
    "quality style": {
        "steps": 2500,
        "rank": 32,
        "alpha": 16.0,
        "learning_rate": 1e-4,
        "resolution": 768,
        "batch_size": 2,
        "lora_targets": "attention+ff",
        "lr_schedule": "cosine",
        "warmup_steps": 100,
        "min_snr_gamma": 5.0,
        "noise_offset": 0.03,
        "flip": True,
        "cache_latents": True,
        "checkpoint_every": 250,
        "sample_count": 5,
    },
}


def config_from_preset(preset: str, **overrides: Any) -> TrainConfig:
    if preset not in TRAIN_PRESETS:
        raise UserError(f"Unknown preset {preset!r}.", hint=f"Choose from: {', '.join(TRAIN_PRESETS)}.")
    return from_dict(TrainConfig, {**TRAIN_PRESETS[preset], **overrides})


def load_toml(path: str | Path, *, preset: str | None = None, **overrides: Any) -> TrainConfig:
    """Read a run file; a ``preset = "fast style"`` key (or ``preset=``) applies that preset under its values."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"Config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"Config file {path.name} is not valid TOML: {err}") from None
    data = dict(data.get("train", data))  # accept a [train] table or top-level keys
    file_preset = data.pop("preset", None)
    preset = preset or file_preset
    base = dict(TRAIN_PRESETS[preset]) if preset in TRAIN_PRESETS else {}
    if preset is not None and preset not in TRAIN_PRESETS:
        raise UserError(f"Unknown preset {preset!r} in {path.name}.", hint=f"Choose from: {', '.join(TRAIN_PRESETS)}.")
    return from_dict(TrainConfig, {**base, **data, **overrides})
