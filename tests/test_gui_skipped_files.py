"""Issue #10 item 2 in the app: the shelf shows styles only; files that are not styles (a training run's
checkpoint internals, other weights, damaged files) are counted in a quiet "N skipped" button whose list,
one click away, says why."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints", "does not support raise"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]

ATTN = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"


def test_shelf_lists_styles_only_and_the_skipped_button_shows_why(qtbot):
    from safetensors.torch import save_file

    from app.engine import facade
    from app.engine.adapters import save_adapter
    from app.gui.shelf_panel import ShelfPanel
    from app.gui.shelf_vm import ShelfViewModel

    shelf = facade.adapters_dir()
    lora = {f"{ATTN}.lora_A.weight": torch.randn(2, 32), f"{ATTN}.lora_B.weight": torch.randn(64, 2)}
    style = save_adapter(shelf / "ink.safetensors", unet=lora, rank=2, alpha=2, family="sd1", title="Ink")
    step = shelf / "ink.checkpoints" / "step-000200"
    step.mkdir(parents=True)
    save_file(lora, str(step / "lora.safetensors"))  # a valid LoRA by its header: still not a style
    save_file({"state.exp_avg": torch.zeros(4)}, str(step / "optimizer.safetensors"))
    (shelf / "half-copied.safetensors").write_bytes(style.read_bytes()[:300])

    vm = ShelfViewModel()
    panel = ShelfPanel(vm)
    qtbot.addWidget(panel)
    panel.resize(360, 640)
    panel.show()
    with qtbot.waitSignal(vm.refreshed, timeout=30_000):
        vm.refresh()
    cards = [vm.model.item(r).card for r in range(vm.model.rowCount())]
    assert [c.title for c in cards if c.path.startswith(str(shelf))] == ["Ink"]  # no "lora", no "optimizer" card
    assert not {"lora", "optimizer", "half-copied"} & {c.title for c in cards}
    button = panel.skipped_button
    assert button.isVisible() and button.text() == "3 skipped"

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = button.dialog
    qtbot.waitUntil(dialog.isVisible)
    rows = dict(dialog.rows())
    assert set(rows) == {"lora.safetensors", "optimizer.safetensors", "half-copied.safetensors"}
    assert "training checkpoint" in rows["lora.safetensors"] and "truncated" in rows["half-copied.safetensors"]
    dialog.close()

    # Once the folder is clean the button goes away.
    import shutil

    shutil.rmtree(shelf / "ink.checkpoints")
    (shelf / "half-copied.safetensors").unlink()
    with qtbot.waitSignal(vm.refreshed, timeout=30_000):
        vm.refresh()
    assert not button.isVisible()
