"""Work-arounds for bugs in the Qt binding that would otherwise crash the app.

PySide6 6.12 on CPython 3.11: every Python-side ``SignalInstance.emit(...)`` returns ``True`` without
taking a reference, so each emit (ours, pyqtgraph's, Qt models') steals one reference from ``True``.
After a few thousand emits — one long training run — the interpreter "deallocates" ``True`` and aborts
("Fatal Python error: bool_dealloc"), often at exit or during garbage collection. Python 3.12 made
``True``/``False`` immortal; on older interpreters we give them a huge reference count so the stolen
references can never reach zero. Bools are static objects that are never freed, so this changes nothing
else. Measured: tests/test_gui_widgets.py::test_signal_emits_do_not_drain_true.

``None`` is drained the same way while pyqtgraph paints (about 190 references per paint of the loss plot,
measured): the app aborted with "none_dealloc" some 50 steps into a training run. It gets the same headroom.
Measured: tests/test_gui_train_layout.py::test_painting_the_loss_plot_does_not_drain_none.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # ~10^12 emits before the count could run out


def immortalize_bools() -> None:
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return  # 3.12+: already immortal (and the refcount field means something else there)
    for value in (True, False, None):
        refcnt = ctypes.c_ssize_t.from_address(id(value))  # ob_refcnt is the first field of every object
        if refcnt.value < _HEADROOM:
            refcnt.value += _HEADROOM
