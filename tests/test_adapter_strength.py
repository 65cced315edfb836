"""The effective update of an adapter (scale × up·down per module), judged against the base's layers, and the
generation guard that stops a broken-down image instead of saving it."""

from __future__ import annotations

import json
import math

import pytest
import torch

from app.cli import main as cli_main
from app.engine.adapters.strength import judge, update_norm
from app.engine.errors import UserError
from app.engine.generate.sanity import StackWatch
from tests.helpers.hostile_files import Good, _alpha, _variant
from tests.helpers.loras import make_lora


@pytest.mark.parametrize("shape", [((4, 24), (40, 4)), ((3, 8, 3, 3), (16, 3, 1, 1))])
def test_update_norm_is_the_norm_of_the_scaled_product(shape):
    gen = torch.Generator().manual_seed(0)
    down, up = torch.randn(*shape[0], generator=gen), torch.randn(*shape[1], generator=gen)
    product = up.reshape(up.shape[0], -1).double() @ down.reshape(down.shape[0], -1).double()
    assert update_norm(up, down, 0.25) == pytest.approx(float((0.25 * product).norm()), rel=1e-9)
    assert update_norm(up, down, 1e308 * 10) == math.inf  # overflow is reported, never a bogus number


class _Module:
    def __init__(self, rank: int, alpha: float) -> None:
        self.down, self.up, self.alpha = torch.ones(rank, 8), torch.ones(8, rank), alpha

    @property
    def rank(self) -> int:
        return self.down.shape[0]

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def test_judgement_names_alpha_zero_absurd_scales_and_overwhelming_updates():
    assert "changes nothing at any strength" in judge({"a": _Module(4, 0.0), "b": _Module(4, 0.0)}).warnings[0]
    partial = judge({"a": _Module(4, 0.0), "b": _Module(4, 4.0)})
    assert partial.warnings == ["1 of 2 modules have alpha 0 and change nothing (e.g. a)."] and not partial.absurd
    absurd = judge({"a": _Module(4, 3e38)})
    assert absurd.absurd.startswith("absurd scale: alpha 3e+38 with rank 4 gives alpha/rank = 7.5e+37")
    # ‖ΔW‖ of ones(8,4)@ones(4,8) at scale 1 is 32: fine alone, 40× a layer of norm 0.8.
    assert judge({"a": _Module(4, 4.0)}).warnings == []
    strong = judge({"a": _Module(4, 4.0)}, lambda name: 0.8)
    assert strong.modules[0].ratio == pytest.approx(40.0)
    assert "the update is 40× the base layer's own weights in a" in strong.warnings[0]


def test_inspect_with_base_judges_each_module_against_its_layer(tiny_sd15, tmp_path, capsys):
    good_path = make_lora(tiny_sd15, tmp_path / "good.safetensors", family="sd1", seed=1)
    assert cli_main(["shelf", "inspect", str(good_path), "--base", str(tiny_sd15), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["strength"]
    assert report["compared_to_base"] > 0 and report["largest_ratio_to_base"] < 10 and not report["warnings"]

    # alpha × 200: every number is ordinary and the absolute size passes, but against the tiny base's
    # layers the update is hundreds of times the weights: only the comparison with the base can tell.
    strong = _variant(_alpha(4.0 * 200))(tmp_path / "strong.safetensors", Good.read(good_path))
    assert cli_main(["shelf", "inspect", str(strong)]) == 0
    assert "⚠" not in capsys.readouterr().out
    assert cli_main(["shelf", "inspect", str(strong), "--base", str(tiny_sd15)]) == 0
    out = capsys.readouterr().out
    assert "update size" in out and "ΔW/W median" in out
    assert "× the base layer's own weights" in out and "overwhelms the model" in out


def _watch() -> StackWatch:
    return StackWatch(("Ink (0.8)", "Stripes [stripes-v2.safetensors] (1)"))


@pytest.mark.parametrize(
    "latents, what",
    [(torch.full((1, 4, 8, 8), float("nan")), "NaN/Inf values appeared at step 3"),
     (torch.full((1, 4, 8, 8), 3e6), "exploded"),
     (torch.full((1, 4, 8, 8), 0.5), "collapsed to a single value")],
)  # fmt: skip
def test_broken_down_latents_stop_generation_naming_the_styles(latents, what):
    _watch().check_latents(torch.randn(1, 4, 8, 8) * 14.6, 1)  # a sampler's first latents: fine
    with pytest.raises(UserError) as err:
        _watch().check_latents(latents, 3)
    message = str(err.value)
    assert what in message and "with Ink (0.8), Stripes [stripes-v2.safetensors] (1) on; nothing was saved" in message
    assert "\n" not in message


def test_a_flat_image_is_refused_only_while_styles_are_on():
    from PIL import Image

    black = Image.new("RGB", (64, 64), (0, 0, 0))
    with pytest.raises(UserError, match=r"decoded to a single flat colour \(0\)"):
        _watch().check_image(black)
    StackWatch(()).check_image(black)  # the base alone: not an adapter's fault, saved as asked
    noisy = Image.effect_noise((64, 64), 40).convert("RGB")
    _watch().check_image(noisy)
