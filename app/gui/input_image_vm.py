"""InputImageModel: the Generate tab's input picture and painted mask (image to image and inpainting).

It owns what the widgets show: the input picture (a file), the mask being painted (white = repaint) and
the image-to-image settings, all kept in the GenerateViewModel's ``params`` so a run, a restored PNG and
the form agree. A painted mask is saved as a PNG named by its content (the pictures made from it name it
in their record, so it is never overwritten); a pasted picture likewise.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QIODevice, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen

from app.engine import facade
from app.gui.generate_vm import GenerateState

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class InputImageModel(QObject):
    changed = Signal()  # mode, input picture or settings
    maskChanged = Signal()

    def __init__(self, generate_vm: Any) -> None:
        super().__init__(generate_vm)
        self.gvm = generate_vm
        self.picture = QImage()  # the input as loaded (null when none or missing)
        self.mask = QImage()  # RGB32, the picture's size; white = repaint
        self.missing = ""  # "name.png" when params name an input this machine lacks
        self._shown = ("", "")  # (init_image, mask_image) currently loaded
        generate_vm.paramsChanged.connect(self.sync_from_params)

    # ------------------------------------------------------------------ state
    @property
    def params(self):
        return self.gvm.params

    @property
    def mode(self) -> str:
        return self.params.mode

    def has_mask(self) -> bool:
        return bool(self.params.mask_image)

    # ------------------------------------------------------------------ the input picture
    def use_picture(self, path: str) -> bool:
        """Switch to image to image on ``path`` (a fresh, empty mask); False with a message if unreadable."""
        image = QImage(path)
        if image.isNull():
            self.gvm.errorRaised.emit(f"{Path(path).name}: not a picture this app can read.", "")
            return False
        self.params.init_image = str(path)
        self.params.mask_image = ""
        self._load(image, QImage(), str(path), "")
        self.gvm.message.emit(f"Image to image: restyling {Path(path).name} (paint on it to inpaint)")
        return True

    def use_qimage(self, image: QImage, name: str = "pasted") -> bool:
        """A pasted picture: saved under the inputs folder (named by content) and used as the input."""
        if image.isNull():
            self.gvm.errorRaised.emit("The clipboard holds no picture.", "")
            return False
        data = _png_bytes(image)
        target = facade.input_pictures_dir() / f"{name}-{hashlib.sha256(data).hexdigest()[:12]}.png"
        if not target.is_file():
            facade.atomic_write_bytes(target, data)
        return self.use_picture(str(target))

    def back_to_text(self) -> None:
        self.params.init_image = ""
        self.params.mask_image = ""
        self._load(QImage(), QImage(), "", "")
        self.gvm.message.emit("Text to image")

    def set_setting(self, name: str, value: Any) -> None:
        self.gvm.set_param(name, value)
        self.changed.emit()

    def sync_from_params(self) -> None:
        """After a restored PNG (or any wholesale change of params): load what they name."""
        init, mask = self.params.init_image, self.params.mask_image
        still_there = not init or Path(init).is_file() == (not self.picture.isNull())
        if (init, mask) == self._shown and still_there:
            self.changed.emit()  # settings may have changed
            return
        picture = QImage(init) if init else QImage()
        mask_image = QImage(mask) if mask and not picture.isNull() else QImage()
        self._load(picture, mask_image, init, mask)

    def _load(self, picture: QImage, mask: QImage, init: str, mask_path: str) -> None:
        self.picture = picture
        self.missing = Path(init).name if init and picture.isNull() else ""
        if picture.isNull():
            self.mask = QImage()
        else:
            self.mask = QImage(picture.size(), QImage.Format.Format_RGB32)
            self.mask.fill(Qt.GlobalColor.black)
            if not mask.isNull():
                painter = QPainter(self.mask)
                painter.drawImage(self.mask.rect(), mask.convertToFormat(QImage.Format.Format_RGB32))
                painter.end()
        self._shown = (init, mask_path)
        self.changed.emit()
        self.maskChanged.emit()

    # ------------------------------------------------------------------ the mask
    def paint(self, start: QPointF, end: QPointF, radius: float, erase: bool) -> None:
        """One brush segment in picture pixels: white repaints, black (erase) keeps."""
        if self.mask.isNull():
            return
        painter = QPainter(self.mask)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = QColor(Qt.GlobalColor.black if erase else Qt.GlobalColor.white)
        painter.setPen(QPen(colour, 2 * radius, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(start, end) if start != end else painter.drawPoint(start)
        painter.end()
        self.maskChanged.emit()

    def clear_mask(self) -> None:
        if not self.mask.isNull():
            self.mask.fill(Qt.GlobalColor.black)
            self.commit_mask()

    def invert_mask(self) -> None:
        if not self.mask.isNull():
            self.mask.invertPixels()
            self.commit_mask()

    def commit_mask(self) -> None:
        """After a stroke: save the mask (or drop it when nothing is painted) and switch mode to match."""
        path = ""
        grey = self.mask.convertToFormat(QImage.Format.Format_Grayscale8)
        if not grey.isNull() and _any_painted(grey):
            data = _png_bytes(grey)
            target = facade.input_pictures_dir() / f"mask-{hashlib.sha256(data).hexdigest()[:12]}.png"
            if not target.is_file():
                facade.atomic_write_bytes(target, data)
            path = str(target)
        self.params.mask_image = path
        self._shown = (self.params.init_image, path)
        self.maskChanged.emit()
        self.changed.emit()

    # ------------------------------------------------------------------ batch restyle
    def restyle_folder(self, in_dir: str, out_dir: str) -> bool:
        """Every picture of ``in_dir`` with the current prompt, stack and strength, on the worker thread."""
        gvm = self.gvm
        ok, why = gvm.can_generate()
        if not ok:
            gvm.errorRaised.emit(why, "")
            return False
        if not gvm.seed_locked:
            gvm.roll_seed()
        run = gvm.run_params(init_image="", mask_image="", stack=gvm.shelf.stack_entries())
        if run is None:
            return False
        # The view model's own run bookkeeping, as its generate() does: results, progress and Cancel then
        # work for a batch exactly as for one picture.
        gvm._run_params, gvm._cancelled, gvm._started_at = run, False, time.monotonic()
        gvm._run_is_batch = True  # each result restores its own input picture from its PNG
        gvm._set_state(GenerateState.GENERATING)
        gvm.message.emit(f"Restyling the pictures of {Path(in_dir).name} into {Path(out_dir).name}…")
        gvm._worker().request_batch(run, in_dir, out_dir)
        return True


def _png_bytes(image: QImage) -> bytes:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data())


def _any_painted(grey: QImage) -> bool:
    import numpy as np

    rows = np.frombuffer(grey.constBits(), dtype=np.uint8, count=grey.sizeInBytes())
    return bool(rows.reshape(grey.height(), grey.bytesPerLine())[:, : grey.width()].any())  # rows are padded
