"""Cheap GUI pieces without a model: shelf order/filter/stack, family mismatch flags, the error banner,
the uncaught-exception dialog, and that the window comes up without importing the engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


def card(name: str, family: str = "sd1", sha: str = ""):
    from app.engine.facade import AdapterCard

    return AdapterCard(
        path=f"/shelf/{name}.safetensors",
        title=name.capitalize(),
        trigger=f"{name}style",
        family=family,
        sha256=sha or name * 4,
    )


@pytest.fixture
def shelf(qtbot):
    from app.gui.shelf_panel import ShelfPanel
    from app.gui.shelf_vm import ShelfViewModel

    vm = ShelfViewModel()
    panel = ShelfPanel(vm)
    qtbot.addWidget(panel)
    vm.model.set_cards([card("ink"), card("pastel"), card("xl", family="sdxl")])
    panel.resize(320, 600)
    panel.show()
    return vm, panel


def titles(model):
    return [model.item(r).card.title for r in range(model.rowCount())]


def test_stack_follows_shelf_order_toggles_and_weights(shelf):
    vm, panel = shelf
    model = vm.model
    panel.cards["/shelf/pastel.safetensors"].toggle.click()
    panel.cards["/shelf/ink.safetensors"].toggle.click()
    panel.cards["/shelf/ink.safetensors"].spin.setValue(-0.5)
    assert [(e.name, e.weight) for e in model.stack_entries()] == [("Ink", -0.5), ("Pastel", 1.0)]
    assert model.move(1, 0)
    assert titles(model) == ["Pastel", "Ink", "Xl"]
    assert [e.name for e in model.stack_entries()] == ["Pastel", "Ink"]
    # Cards follow the model order on screen too.
    assert panel.list_layout.itemAt(0).widget() is panel.cards["/shelf/pastel.safetensors"]


def test_drag_drop_reorders_by_position(qtbot, shelf):
    vm, panel = shelf
    qtbot.waitUntil(lambda: panel.cards["/shelf/xl.safetensors"].geometry().height() > 0)
    xl_bottom = panel.cards["/shelf/xl.safetensors"].geometry().bottom()
    panel.drop_row("/shelf/ink.safetensors", xl_bottom + 5)  # below the last card
    assert titles(vm.model) == ["Pastel", "Xl", "Ink"]
    top = panel.cards["/shelf/pastel.safetensors"].geometry().top()
    panel.drop_row("/shelf/ink.safetensors", top + 1)  # above the first card
    assert titles(vm.model) == ["Ink", "Pastel", "Xl"]


def test_filter_and_family_mismatch(qtbot, shelf):
    from app.gui.shelf_model import MismatchRole

    vm, panel = shelf
    panel.search.setText("past")
    visible = [p for p, c in panel.cards.items() if c.isVisible()]
    assert visible == ["/shelf/pastel.safetensors"]
    panel.search.setText("")
    vm.model.set_base_family("sd1")
    flags = {vm.model.item(r).card.title: vm.model.index(r).data(MismatchRole) for r in range(3)}
    assert flags["Ink"] == "" and "SDXL" in flags["Xl"]
    xl, ink = panel.cards["/shelf/xl.safetensors"], panel.cards["/shelf/ink.safetensors"]
    assert xl.warn_icon.isVisible() and "SDXL" in xl.warn_icon.toolTip() and xl.badge.property("warn") == "true"
    assert not ink.warn_icon.isVisible()


def test_apply_stack_matches_by_hash_then_name_and_reports_missing(shelf):
    from app.engine.facade import StackEntry

    vm, _panel = shelf
    before = titles(vm.model)
    missing = vm.model.apply_stack(
        [
            StackEntry(path="", sha256="pastel" * 4, weight=0.7, name="renamed"),
            StackEntry(path="", name="Ink", weight=1.2),
            StackEntry(path="", name="Gone", sha256="f" * 64),
        ]
    )
    assert missing == ["Gone"]
    # Restoring a stack never rearranges the artist's shelf: the stack is taken in shelf order.
    assert titles(vm.model) == before
    assert [(e.name, e.weight) for e in vm.model.stack_entries()] == [("Ink", 1.2), ("Pastel", 0.7)]


def test_error_banner_shows_reason_and_details(qtbot):
    from app.gui.errors import ErrorBanner

    banner = ErrorBanner()
    qtbot.addWidget(banner)
    banner.show()
    banner.show_error("The dataset has no usable image.", "empty.png: 0 bytes")
    assert banner.message() == "The dataset has no usable image."
    assert not banner.details_view.isVisible()
    banner.details_button.click()
    assert banner.details_view.isVisible() and "0 bytes" in banner.details_view.toPlainText()
    banner.dismiss()
    assert banner.message() == ""


def test_uncaught_exception_becomes_a_dialog(qtbot):
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.engine.facade import UserError
    from app.gui.errors import ExceptionDialogHook

    hook = ExceptionDialogHook()
    try:
        raise UserError("Base model folder is empty.", hint="Pick another folder.")
    except UserError as exc:
        hook(type(exc), exc, exc.__traceback__)
    assert hook.last_message == "Base model folder is empty. Pick another folder."
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and boxes[-1].text() == hook.last_message and "Traceback" in boxes[-1].detailedText()
    for box in boxes:
        box.close()


def test_window_comes_up_without_the_engine():
    code = (
        "import sys\n"
        "from app.gui.main import create_app\n"
        "app = create_app([])\n"
        "from app.gui.app_window import MainWindow\n"
        "w = MainWindow(load_engine=False); w.show(); app.processEvents()\n"
        "assert w.tabs.count() == 2 and w.isVisible()\n"
        "print(','.join(m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"showing the window imported {out.stdout.strip()}"


_EMITS = (
    "from PySide6.QtCore import QObject, Signal\n"
    "class S(QObject):\n"
    "    ping = Signal(str)\n"
    "s = S()\n"
    "for _ in range(50_000):\n"
    "    s.ping.emit('x')\n"
    "import gc; gc.collect()\n"
    "print('ok')\n"
)


def test_signal_emits_do_not_drain_true():
    """PySide6 6.12 + CPython 3.11 steals a reference to True per emit; app.gui guards against it, so
    a long session (tens of thousands of emits) neither aborts at exit nor in garbage collection."""
    out = subprocess.run(
        [sys.executable, "-c", "import app.gui\n" + _EMITS], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-500:]


def test_restoring_a_stack_names_each_missing_style_with_its_hash(qtbot, shelf):
    from app.engine.facade import GenerateConfig, StackEntry
    from app.gui.generate_vm import GenerateViewModel

    vm_shelf, _panel = shelf
    vm = GenerateViewModel(vm_shelf.model)
    stack = [StackEntry(path="", name="Ink", weight=0.5), StackEntry(path="", name="Gone", sha256="ab" * 32)]
    with qtbot.waitSignal(vm.errorRaised, timeout=2_000) as err:
        vm.apply(GenerateConfig(prompt="a castle", stack=stack))
    assert err.args[0] == "Not on the shelf, so left out: Gone (sha256 abababababab…)"


def test_a1111_png_restores_prompt_settings_and_stack_by_name(qtbot, shelf, tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from app.gui.generate_vm import GenerateViewModel

    vm_shelf, _panel = shelf
    vm = GenerateViewModel(vm_shelf.model)
    info = PngInfo()
    info.add_text(
        "parameters",
        "a castle at dusk <lora:ink:0.7>\nNegative prompt: fog\n"
        "Steps: 23, Sampler: Euler a, CFG scale: 6.5, Seed: 3000000000, Size: 512x768, "
        'Lora hashes: "ink: 0123456789"',
    )
    png = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(png, pnginfo=info)
    vm.restore_from_png(str(png))
    p = vm.params
    assert (p.prompt, p.negative, p.steps, p.sampler, p.guidance, p.seed, p.width, p.height) == (
        "a castle at dusk",
        "fog",
        23,
        "Euler a",
        6.5,
        3_000_000_000,
        512,
        768,
    )
    assert vm.seed_locked
    assert [(e.name, e.weight) for e in vm_shelf.model.stack_entries()] == [("Ink", 0.7)]
    # A PNG without parameters is a clear one-line error, not a crash.
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with qtbot.waitSignal(vm.errorRaised) as err:
        vm.restore_from_png(str(plain))
    assert "no generation parameters" in err.args[0]


def test_stack_presets_save_and_load(shelf):
    vm, panel = shelf
    model = vm.model
    model.set_enabled(1, True)
    model.set_weight(1, 0.4)
    vm.save_preset("soft pastel")
    assert vm.preset_names() == ["soft pastel"]
    model.set_enabled(1, False)
    model.set_enabled(0, True)
    vm.load_preset("soft pastel")
    assert [(e.name, e.weight) for e in model.stack_entries()] == [("Pastel", 0.4)]
    assert panel.cards["/shelf/pastel.safetensors"].toggle.isChecked()
    assert not panel.cards["/shelf/ink.safetensors"].toggle.isChecked()


def test_text_encoder_weight_is_offered_only_where_it_exists_and_follows_until_set(qtbot):
    from app.engine.facade import AdapterCard
    from app.engine.shelf.stack import StackEntry
    from app.gui.shelf_panel import ShelfPanel
    from app.gui.shelf_vm import ShelfViewModel

    vm = ShelfViewModel()
    panel = ShelfPanel(vm)
    qtbot.addWidget(panel)
    te = AdapterCard(path="/shelf/te.safetensors", title="Te", sha256="te" * 8, has_text_encoder=True)
    vm.model.set_cards([te, card("ink")])
    panel.show()
    te_card, ink_card = panel.cards[te.path], panel.cards["/shelf/ink.safetensors"]
    assert te_card.text_spin.isVisible() and not ink_card.text_spin.isVisible()
    model = vm.model
    row = model.row_of(te.path)
    model.set_enabled(row, True)
    model.set_weight(row, 0.6)
    assert te_card.text_spin.value() == 0.6  # follows the strength while unset
    assert model.stack_entries()[0].text_encoder_weight is None
    te_card.text_spin.setValue(0.25)  # the user's own text-encoder strength
    assert model.stack_entries()[0].text_encoder_weight == 0.25
    model.set_weight(row, 0.9)
    assert te_card.text_spin.value() == 0.25 and model.stack_entries()[0].weight == 0.9
    # A stack restored from a preset or PNG brings its text-encoder strength back (or follows again).
    model.apply_stack([StackEntry(path=te.path, weight=0.5, text_encoder_weight=None, sha256=te.sha256)])
    assert model.stack_entries()[0].text_encoder_weight is None and te_card.text_spin.value() == 0.5
    model.apply_stack([StackEntry(path=te.path, weight=0.5, text_encoder_weight=-1.0, sha256=te.sha256)])
    assert model.stack_entries()[0].text_encoder_weight == -1.0 and te_card.text_spin.value() == -1.0


def test_selected_gallery_picture_is_drawn_untinted(qtbot, tmp_path):
    from PIL import Image
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.gui.gallery import GalleryImage, GalleryModel
    from app.gui.theme import apply_theme

    apply_theme(QApplication.instance(), "dark")  # its highlight colour is what used to tint the picture
    path = tmp_path / "00001-7.png"
    Image.new("RGB", (64, 64), (35, 160, 60)).save(path)
    model = GalleryModel(thumb=64)
    model.add(GalleryImage(str(path), 7))
    with qtbot.waitSignal(model.thumbnails.ready, timeout=10_000):
        model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
    icon = model.data(model.index(0), Qt.ItemDataRole.DecorationRole)
    try:
        normal = icon.pixmap(64, 64, QIcon.Mode.Normal).toImage().pixelColor(32, 32)
        selected = icon.pixmap(64, 64, QIcon.Mode.Selected).toImage().pixelColor(32, 32)
    finally:
        apply_theme(QApplication.instance(), "system")
    assert (
        (selected.red(), selected.green(), selected.blue())
        == (normal.red(), normal.green(), normal.blue())
        == (35, 160, 60)
    )


def test_cycles_are_collected_on_the_ui_thread_never_in_a_worker(qtbot):
    import gc
    import threading

    assert not gc.isenabled()  # the module's fixture installed app.gui.gc_guard, as create_app does
    freed_in: list[str] = []

    class Cyclic:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed_in.append(threading.current_thread().name)

    def engine_work() -> None:
        for _ in range(5):
            Cyclic()
        _ = [[] for _ in range(50_000)]  # allocations that would start a collection in this thread

    worker = threading.Thread(target=engine_work, name="engine-worker")
    worker.start()
    worker.join()
    assert freed_in == []
    # The UI thread collects once allocations pass CPython's own first threshold, as automatic GC would.
    live = [{} for _ in range(2 * gc.get_threshold()[0])]
    qtbot.waitUntil(lambda: len(freed_in) == 5, timeout=5_000)
    assert set(freed_in) == {"MainThread"} and live


def test_shelf_shows_the_summed_strength_and_a_quiet_hint_when_high(qtbot, shelf):
    from PySide6.QtCore import Qt

    from tests.helpers.gui import type_into

    vm, panel = shelf
    ink, pastel = panel.cards["/shelf/ink.safetensors"], panel.cards["/shelf/pastel.safetensors"]
    assert "No style on" in panel.total_label.text()
    qtbot.mouseClick(ink.toggle, Qt.MouseButton.LeftButton, pos=ink.toggle.rect().center())
    assert panel.total_label.text() == "1 on · total strength 1.00"
    assert panel.total_label.property("warn") == "false"
    qtbot.mouseClick(pastel.toggle, Qt.MouseButton.LeftButton, pos=pastel.toggle.rect().center())
    text = panel.total_label.text()  # two styles at 1.0/1.0: the case that wipes out the subject
    assert text.startswith("2 on · total strength 2.00") and "try a total near 1" in text
    assert panel.total_label.property("warn") == "true"
    type_into(qtbot, ink.spin, "0.5")
    type_into(qtbot, pastel.spin, "-0.5")  # a negative strength pushes as hard as a positive one
    assert panel.total_label.text() == "2 on · total strength 1.00"
    assert panel.total_label.property("warn") == "false"
