"""Each setting is defined once, on its config dataclass: the CLI flags, the forms and TOML files all follow it.

The proof: a setting added to TrainConfig (a subclass here, standing in for a one-line edit of the class)
becomes a ``train`` flag, a Train-form widget with its range and tooltip, and a TOML key, with no other edit;
the Generate tab's widgets have GenerateConfig's ranges, and a setting added to GenerateConfig becomes a
``generate`` flag and a "More settings" widget whose typed value reaches the next run and the saved session;
a config is checked when it is built.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass

import pytest

from app.engine.configbase import describe, parse_value, setting, settings_of
from app.engine.errors import UserError
from app.engine.generate.config import GenerateConfig
from app.engine.train import config as train_config
from app.engine.train.config import TrainConfig


@dataclass
class TrainConfigWithTiles(TrainConfig):
    # The one edit a new setting takes.
    tile_size: int = setting(64, "Train on tiles of this many pixels: finer textures for big pictures",
                             minimum=16, maximum=256, step=16, advanced=True, same_on_resume=True)  # fmt: skip


@pytest.fixture
def tiles(monkeypatch):
    monkeypatch.setattr(train_config, "TrainConfig", TrainConfigWithTiles)
    return TrainConfigWithTiles


def _train_args(*argv: str) -> argparse.Namespace:
    from app.cli import build_parser

    return build_parser().parse_args(["train", *argv])


def test_a_new_setting_is_a_cli_flag_a_toml_key_and_a_resume_check(tiles, tmp_path, capsys):
    from app.commands.train import build_config
    from app.engine.train.checkpoints import changed_settings

    assert build_config(_train_args("data", "--tile-size", "96")).tile_size == 96
    assert build_config(_train_args("data", "--set", "tile_size=32")).tile_size == 32
    with pytest.raises(UserError, match=r"Tile size.*16 to 256.*got 512"):  # the config's own range
        build_config(_train_args("data", "--tile-size", "512"))
    with pytest.raises(UserError, match=r"--tile-size: 'big' is not a whole number"):
        build_config(_train_args("data", "--tile-size", "big"))
    with pytest.raises(SystemExit):
        _train_args("--help")
    assert "--tile-size N" in capsys.readouterr().out

    run = tmp_path / "run.toml"
    run.write_text('preset = "fast style"\ntile_size = 128\n', encoding="utf-8")
    assert train_config.load_toml(run).tile_size == 128
    run.write_text('tile_size = "48"\n', encoding="utf-8")  # text in a TOML file goes through the same parser
    assert train_config.load_toml(run).tile_size == 48
    assert build_config(_train_args("data", "--config", str(run), "--tile-size", "80")).tile_size == 80

    saved = dataclasses.asdict(tiles(tile_size=64))
    assert changed_settings(saved, tiles(tile_size=80)) == ["tile_size"]
    assert changed_settings(saved, tiles(tile_size=64, steps=9000)) == []  # steps may change on resume


@pytest.mark.usefixtures("isolated_settings", "ui_thread_gc")
def test_a_new_setting_is_a_train_form_widget_that_reaches_the_training_run(tiles, qtbot, tmp_path):
    from PySide6.QtWidgets import QSpinBox

    from app.commands.train import build_config
    from app.engine import facade
    from app.gui.train_tab import TrainTab
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    tab = TrainTab(vm)
    qtbot.addWidget(tab)
    box = tab.form.editors["tile_size"]
    assert isinstance(box, QSpinBox)
    assert (box.minimum(), box.maximum(), box.singleStep(), box.value()) == (16, 256, 16, 64)
    assert box.toolTip().startswith("Train on tiles")
    box.setValue(112)
    assert vm.values["tile_size"] == 112

    # The Train tab hands its values to the training child as a TOML file; the child's CLI reads it back.
    argv = facade.train_child_argv("data", "base", str(tmp_path / "a.safetensors"), vm.values, run_dir=tmp_path / "run")
    assert "tile_size = 112" in (tmp_path / "run" / "run.toml").read_text(encoding="utf-8")
    assert build_config(_train_args(*argv[argv.index("train") + 1 :])).tile_size == 112


def test_generate_flags_come_from_generate_config():
    from app.cli import build_parser

    generate = build_parser()._subparsers._group_actions[0].choices["generate"]  # type: ignore[union-attr]
    dest_of = {option: action.dest for action in generate._actions for option in action.option_strings}
    flags = set(dest_of)
    for s in describe(GenerateConfig):
        if s.cli:
            assert dest_of.get(f"--{s.flag}") == s.name, s.name
    # cli=False settings are not read from the command line, even where a hand-written flag shares the name
    # (--out-dir is the batch restyle's output folder, not GenerateConfig.out_dir).
    from app.commands.setting_flags import setting_values

    assert "out_dir" not in setting_values(GenerateConfig, argparse.Namespace(out_dir="elsewhere", steps="3"))
    # The names users and scripts already type.
    assert {"--prompt", "--negative", "--seed", "--steps", "--guidance", "--width", "--height", "--sampler",
            "--batch-count", "--no-triggers", "--init-image", "--strength", "--resize-mode", "--mask",
            "--mask-blur", "--inpaint-area", "--inpaint-padding", "--masked-content"} <= flags  # fmt: skip


def test_a_new_generate_setting_is_a_flag_without_a_cli_edit():
    from app.commands.setting_flags import add_setting_flags, setting_values

    @dataclass
    class WithClipSkip(GenerateConfig):
        clip_skip: int = setting(1, "Use the text encoder's n-th last layer", minimum=1, maximum=12)

    parser = argparse.ArgumentParser()
    add_setting_flags(parser, WithClipSkip, required=["prompt"])
    args = parser.parse_args(["--prompt", "a boat", "--clip-skip", "2", "--no-triggers", "--width", "512"])
    config = WithClipSkip(**setting_values(WithClipSkip, args))
    assert (config.clip_skip, config.insert_triggers, config.width, config.height) == (2, False, 512, None)
    with pytest.raises(UserError, match="Clip skip"):
        WithClipSkip(**setting_values(WithClipSkip, parser.parse_args(["--prompt", "p", "--clip-skip", "13"])))


@pytest.mark.usefixtures("isolated_settings", "ui_thread_gc")
def test_generate_tab_widgets_have_the_configs_ranges_and_help(qtbot):
    from app.gui.generate_vm import MAX_SEED
    from app.gui.input_image_panel import InputImagePanel
    from tests.helpers.gui import open_main_window

    window = open_main_window(qtbot)
    tab, vm = window.generate_tab, window.generate_vm
    s = settings_of(GenerateConfig)
    for box, name in ((tab.steps, "steps"), (tab.guidance, "guidance"), (tab.batch, "batch_count")):
        assert (box.minimum(), box.maximum()) == (s[name].minimum, s[name].maximum), name
        assert box.toolTip() == s[name].help
    assert (tab.steps.maximum(), tab.batch.maximum(), tab.width_box.maximum()) == (200, 100, 4096)
    assert tab.guidance.singleStep() == s["guidance"].step
    assert (tab.steps.value(), tab.guidance.value()) == (s["steps"].default, s["guidance"].default)
    assert MAX_SEED == s["seed"].maximum == 2**32 - 1
    # Size: "auto" (None) below the config's minimum, the config's range above it.
    assert tab.width_box.specialValueText() == "auto" and tab.width_box.singleStep() == 64
    tab.width_box.setValue(640)
    assert vm.params.width == 640
    tab.width_box.setValue(0)
    assert vm.params.width is None
    inputs = tab.findChild(InputImagePanel)
    assert (inputs.mask_blur.maximum(), inputs.padding.maximum()) == (64, 1024)
    assert inputs.mask_blur.toolTip() == s["mask_blur"].help


@dataclass
class GenerateConfigWithClipSkip(GenerateConfig):
    # The one edit a new Generate setting takes.
    clip_skip: int = setting(1, "Use the text encoder's n-th last layer: 2 suits many anime models",
                             minimum=1, maximum=12)  # fmt: skip


@pytest.fixture
def clip_skip(monkeypatch):
    from app.commands import generate as generate_command
    from app.commands import generate_inputs
    from app.engine import facade

    for module in (facade, generate_command, generate_inputs):
        monkeypatch.setattr(module, "GenerateConfig", GenerateConfigWithClipSkip)
    return GenerateConfigWithClipSkip


def test_a_new_generate_setting_is_a_generate_flag(clip_skip, capsys):
    from app.cli import build_parser
    from app.commands.generate import generation_config

    def args(*argv):
        return build_parser().parse_args(["generate", "--base", "b", "--prompt", "a boat", *argv])

    assert generation_config(args("--clip-skip", "2"), out_dir=".", file_stem="x").clip_skip == 2
    assert generation_config(args(), out_dir=".", file_stem="x").clip_skip == 1
    with pytest.raises(UserError, match=r"Clip skip.*1 to 12.*got 13"):
        generation_config(args("--clip-skip", "13"), out_dir=".", file_stem="x")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    assert "--clip-skip N" in capsys.readouterr().out


@pytest.mark.usefixtures("isolated_settings", "ui_thread_gc")
def test_a_new_generate_setting_is_a_more_settings_widget_that_reaches_the_run(clip_skip, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QSpinBox

    from tests.helpers.gui import open_main_window

    window = open_main_window(qtbot, (1024, 640))
    tab, vm = window.generate_tab, window.generate_vm
    window.tabs.setCurrentWidget(tab)
    assert isinstance(vm.params, clip_skip)
    box = tab.more_form.editors["clip_skip"]
    assert isinstance(box, QSpinBox)
    assert (box.minimum(), box.maximum(), box.value()) == (1, 12, 1)
    assert box.toolTip().startswith("Use the text encoder's n-th last layer")
    # Collapsed at first (the tab fits 1024×640); one click on "More settings" opens it.
    assert tab.more_button.isVisible() and not box.isVisible()
    qtbot.mouseClick(tab.more_button, Qt.MouseButton.LeftButton)
    assert box.isVisible()
    # The fields the tab places by hand and those marked form=False are not repeated there.
    assert not {"prompt", "steps", "seed", "strength", "init_image", "mask_image", "out_dir"} & set(
        tab.more_form.editors
    )

    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, "3")
    qtbot.keyClick(box, Qt.Key.Key_Tab)
    assert vm.params.clip_skip == 3
    assert vm.run_params().clip_skip == 3  # the next run's config
    box.selectAll()
    qtbot.keyClicks(box, "99")  # past the config's maximum: the box refuses the second digit
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert vm.params.clip_skip == 9

    # The session brings it back; a saved value outside the setting's range does not come back.
    from app.gui import session
    from app.gui.generate_vm import GenerateViewModel

    vm.save_session()
    again = GenerateViewModel(window.shelf_vm.model)
    assert again.params.clip_skip == 9
    from app.gui import settings as prefs

    saved = json.loads(prefs.get_str(session.GENERATE_KEY))
    assert saved["clip_skip"] == 9
    prefs.set_value(session.GENERATE_KEY, json.dumps({**saved, "clip_skip": 40}))
    assert GenerateViewModel(window.shelf_vm.model).params.clip_skip == 1


def test_a_config_is_checked_when_it_is_built():
    with pytest.raises(UserError, match=r"Steps \(steps\) must be from 1 to 200 \(got 500\)"):
        GenerateConfig(steps=500)
    with pytest.raises(UserError, match="Sampler.*'Nope' is not one of"):
        GenerateConfig(sampler="Nope")
    with pytest.raises(UserError, match=r"Rank \(rank\) must be a whole number"):
        TrainConfig(rank="8")
    with pytest.raises(UserError, match="Learning rate"):
        dataclasses.replace(TrainConfig(), learning_rate=5.0)
    # "Not chosen yet" stays legal: the Train tab builds configs before a folder and a base are picked.
    assert TrainConfig().base == "" and TrainConfig().dataset_dir == ""
    assert GenerateConfig(width=None, seed=None).width is None


def test_one_parser_for_flags_form_fields_and_toml_text():
    s = settings_of(TrainConfig)
    assert parse_value(" a cat | a dog |", s["sample_prompts"]) == ["a cat", "a dog"]
    assert parse_value("512.0", s["resolution"]) == 512
    assert parse_value("Off", s["flip"]) is False
    assert parse_value("", settings_of(GenerateConfig)["seed"]) is None
    with pytest.raises(UserError, match="Resolution: '5.5' is not a whole number"):
        parse_value("5.5", s["resolution"])
