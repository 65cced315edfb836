"""Grid axes as people type them (A1111's X/Y/Z syntax) and the cells a plan makes of them; no model needed."""

from __future__ import annotations

import pytest

from app.engine.errors import UserError
from app.engine.generate.config import GenerateConfig
from app.engine.generate.grid_axes import parse_axis
from app.engine.generate.grid_plan import GridConfig, plan_grid
from app.engine.shelf.stack import StackEntry


@pytest.mark.parametrize(
    "text, kind, target, values",
    [
        ("strength:stripes=0,0.5,1", "strength", "stripes", (0.0, 0.5, 1.0)),
        ("strength:stripes=0-1 (+0.25)", "strength", "stripes", (0.0, 0.25, 0.5, 0.75, 1.0)),
        ("strength:stripes=0-1[5]", "strength", "stripes", (0.0, 0.25, 0.5, 0.75, 1.0)),
        ("strength:x=-1-1 [3]", "strength", "x", (-1.0, 0.0, 1.0)),
        ("Weight:x=0-0.9 (+0.3)", "strength", "x", (0.0, 0.3, 0.6, 0.9)),  # no 0.30000000000000004
        ("seed=1,2,3", "seed", "", (1, 2, 3)),
        ("seed=1-3, 7, 10-14 (+2)", "seed", "", (1, 2, 3, 7, 10, 12, 14)),
        ("steps=30-10 (-10)", "steps", "", (30, 20, 10)),
        ("CFG Scale=3-11 [3]", "cfg", "", (3.0, 7.0, 11.0)),
        ("style=stripes, pastel", "style", "", ("stripes", "pastel")),
        ("prompt_sr=cat,dog", "prompt_sr", "", ("cat", "dog")),
        ('prompt=a cat,"a dog, sitting"', "prompt", "", ("a cat", "a dog, sitting")),
        ("sampler=euler a, DPM++ 2M Karras", "sampler", "", ("Euler a", "DPM++ 2M Karras")),
        ("checkpoint:ink=200,step-000400,final", "checkpoint", "ink", ("200", "step-000400", "final")),
    ],
)
def test_axes_parse_as_a1111_writes_them(text, kind, target, values):
    axis = parse_axis(text)
    assert (axis.kind, axis.target, axis.values) == (kind, target, values)
    assert parse_axis(axis.spec).values == values  # the stored spec reads back the same


@pytest.mark.parametrize(
    "text, words",
    [
        ("seed", "needs '='"),
        ("colour=1,2", "Unknown axis 'colour'"),
        ("seed:ink=1", "takes no style"),
        ("seed=a", "'a' is not a number"),
        ("seed=1.5", "whole numbers"),
        ("seed=1-5 (+0)", "never reaches"),
        ("steps=5-1 (+1)", "never reaches"),
        ("steps=0,10", "outside 1…200"),
        ("cfg=-1,7", "outside 0…30"),
        ("strength:x=0-1000 (+0.001)", "at most 100"),
        ("sampler=Fancy", "unknown sampler 'Fancy'"),
        ("strength:x=", "no values"),
    ],
)
def test_bad_axes_are_refused_with_the_reason(text, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace("+", r"\+")):
        parse_axis(text)


def _finder(tmp_path):
    """Styles 'stripes', 'pastel', 'ink' as files; anything else is unknown, as on a real shelf."""
    files = {}
    for name in ("stripes", "pastel", "ink"):
        files[name] = tmp_path / f"{name}.safetensors"
        files[name].write_bytes(b"")

    def find(name: str) -> str:
        if name not in files:
            raise UserError(f"No adapter named {name!r} on the shelf.")
        return str(files[name])

    return find, files


def _plan(tmp_path, stack=(), **axes):
    find, files = _finder(tmp_path)
    config = GridConfig(**axes, generate=GenerateConfig(prompt="a cat on a mat", seed=5, stack=list(stack)))
    return plan_grid(
        config, find_style=find, find_checkpoints=lambda path, value: [(f"step {value}", path + value)]
    ), files


def _active(cell):
    return [(e.path.rsplit("/", 1)[-1], e.weight) for e in cell.config.stack if e.enabled and e.weight]


def test_strength_by_seed_plan_adds_the_style_and_keeps_the_rest(tmp_path):
    plan, files = _plan(tmp_path, [StackEntry(str(tmp_path / "ink.safetensors"), weight=0.4)],
                        x="strength:stripes=0,0.5,1", y="seed=1,2")  # fmt: skip
    assert plan.shape == (3, 2, 1) and len(plan.cells) == 6
    assert plan.labels["X"] == ["stripes: 0", "stripes: 0.5", "stripes: 1"]
    assert plan.labels["Y"] == ["Seed: 1", "Seed: 2"]
    last = plan.cells[-1]
    assert (last.x, last.y, last.config.seed) == (2, 1, 2)
    assert _active(last) == [("ink.safetensors", 0.4), ("stripes.safetensors", 1.0)]
    assert _active(plan.cells[0]) == [("ink.safetensors", 0.4)]  # strength 0: the style is off
    assert [c.config.file_stem for c in plan.cells[:4]] == ["cell-y1-x1", "cell-y1-x2", "cell-y1-x3", "cell-y2-x1"]
    assert {c.config.batch_count for c in plan.cells} == {1}


def test_style_axis_each_alone_or_swapped_in_the_stack(tmp_path):
    stack = [StackEntry(str(tmp_path / "ink.safetensors"), weight=0.7)]
    plan, _ = _plan(tmp_path, stack, x="style=stripes,ink,none")
    assert [_active(c) for c in plan.cells] == [[("stripes.safetensors", 1.0)], [("ink.safetensors", 0.7)], []]
    plan, _ = _plan(tmp_path, stack, x="style:ink=pastel:0.3,stripes")
    assert [_active(c) for c in plan.cells] == [[("pastel.safetensors", 0.3)], [("stripes.safetensors", 0.7)]]
    with pytest.raises(UserError, match="no style 'pastel' to swap"):
        _plan(tmp_path, stack, x="style:pastel=stripes")
    with pytest.raises(UserError, match="No adapter named 'nope'"):
        _plan(tmp_path, stack, x="style=stripes,nope")


def test_prompt_sr_sampler_steps_cfg_and_checkpoint_axes(tmp_path):
    plan, _ = _plan(tmp_path, x="prompt_sr=cat,dog,fox", y="cfg=3,9", z="sampler=Euler,DDIM")
    assert [c.config.prompt for c in plan.cells[:3]] == ["a cat on a mat", "a dog on a mat", "a fox on a mat"]
    assert {(c.config.guidance, c.config.sampler) for c in plan.cells} == {
        (g, s) for g in (3, 9) for s in ("Euler", "DDIM")
    }
    assert {c.config.seed for c in plan.cells} == {5}
    with pytest.raises(UserError, match="'bird' is not in the prompt"):
        _plan(tmp_path, x="prompt_sr=bird,dog")
    stack = [StackEntry(str(tmp_path / "ink.safetensors"), weight=0.8)]
    plan, _ = _plan(tmp_path, stack, x="checkpoint:ink=200,base", y="strength:ink=0.5,1")
    assert [_active(c) for c in plan.cells] == [
        [("ink.safetensors200", 0.5)], [], [("ink.safetensors200", 1.0)], []]  # fmt: skip


def test_a_grid_without_seed_uses_one_random_seed_everywhere(tmp_path):
    find, _ = _finder(tmp_path)
    plan = plan_grid(GridConfig(x="cfg=3,5,7", generate=GenerateConfig(prompt="x")), find_style=find)
    seeds = {c.config.seed for c in plan.cells}
    assert len(seeds) == 1 and None not in seeds


def test_strength_without_a_style_name_needs_exactly_one_style(tmp_path):
    with pytest.raises(UserError, match="the stack is empty"):
        _plan(tmp_path, x="strength=0,1")
    with pytest.raises(UserError, match="needs at least one axis"):
        _plan(tmp_path)
    with pytest.raises(UserError, match="Two axes both vary seed"):
        _plan(tmp_path, x="seed=1,2", y="seed=3,4")
