"""A team share: files replaced while read, two imports at once, permissions, leftovers of killed writes,
damaged caches. Each test reproduces one defect of issue #11 on real files and processes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from app.cli import main as cli_main
from app.engine.adapters import read_adapter_info, save_adapter
from app.engine.atomic import atomic_path, is_temp_file_name
from app.engine.shelf.library import Library

ROOT = Path(__file__).resolve().parents[1]
ATTN = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"


def _adapter(path: Path, seed: int, *, width: int = 32, rank: int = 2, title: str = "") -> Path:
    gen = torch.Generator().manual_seed(seed)
    sd = {f"{ATTN}.lora_A.weight": torch.randn(rank, width, generator=gen),
          f"{ATTN}.lora_B.weight": torch.randn(2 * width, rank, generator=gen)}  # fmt: skip
    return save_adapter(path, unet=sd, rank=rank, alpha=1, family="sd1", title=title or path.stem)


def _lib(tmp_path: Path, *extra: Path) -> Library:
    return Library(extra, bundled_folder=None)


# --- 1. a file replaced in place while it is read --------------------------------------------------------
_READER = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    import torch
    from app.engine.adapters import read_lora_modules
    from app.engine.errors import UserError
    from app.engine.shelf.library import Library

    target, v1, v2, seconds = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    blobs = [v1.read_bytes(), v2.read_bytes()]
    versions = [read_lora_modules(v)[1] for v in (v1, v2)]
    stop = threading.Event()

    def writer():  # what `cp new.safetensors shared/style.safetensors` does: truncate, then write in chunks
        i = 0
        while not stop.is_set():
            blob = blobs[i % 2]
            with open(target, "wb") as fh:
                for start in range(0, len(blob), 1 << 16):
                    fh.write(blob[start:start + (1 << 16)])
                    fh.flush()
            i += 1
            time.sleep(0.002)

    threading.Thread(target=writer, daemon=True).start()
    counts = {"ok": 0, "refused": 0, "scans": 0}
    reasons, inconsistent = set(), 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            _, modules = read_lora_modules(target)
        except UserError as err:
            counts["refused"] += 1
            reasons.add(str(err)[:100])
        else:
            counts["ok"] += 1
            same = [all(torch.equal(modules[k].up, v[k].up) and torch.equal(modules[k].down, v[k].down) for k in v)
                    for v in versions]
            inconsistent += not any(same)
        Library([target.parent], bundled_folder=None).scan(with_hashes=True)  # the shelf reads it too
        counts["scans"] += 1
    stop.set()
    print(json.dumps({**counts, "inconsistent": inconsistent, "reasons": sorted(reasons)}))
    """
)


def test_an_adapter_overwritten_while_it_is_read_never_kills_the_process(tmp_path):
    """Before: tensors were read through a memory map; a truncation under it killed the reader with SIGBUS
    (rc 135, no message). Now every read succeeds on one consistent version or says the file changed."""
    share = tmp_path / "share"
    share.mkdir()
    v1 = _adapter(tmp_path / "v1.safetensors", 1, width=1024, rank=64)
    v2 = _adapter(tmp_path / "v2.safetensors", 2, width=1024, rank=64)
    target = share / "style.safetensors"
    target.write_bytes(v1.read_bytes())
    script = tmp_path / "reader.py"
    script.write_text(_READER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(target), str(v1), str(v2), "4"],
                          capture_output=True, text=True, env=env, timeout=180)  # fmt: skip
    assert proc.returncode == 0, f"reader died with rc {proc.returncode} (SIGBUS is -7): {proc.stderr[-2000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] > 0 and result["refused"] > 0 and result["scans"] > 0, result
    assert result["inconsistent"] == 0, result  # a read that succeeds is one whole version of the file
    for reason in result["reasons"]:
        assert "changed while it was read" in reason or "truncated" in reason or "empty" in reason, reason


def test_a_read_during_a_same_size_rewrite_is_caught_by_the_recorded_hash(tmp_path, monkeypatch):
    """A rewrite of the same size inside one mtime tick escapes the stat check: the tensor hash recorded in
    the file catches it, and a second read tells a changing file from a damaged one."""
    from app.engine.adapters import info as info_module
    from app.engine.errors import AdapterError

    path = _adapter(tmp_path / "a.safetensors", 1)
    good = path.read_bytes()
    torn = bytearray(good)
    torn[-4:] = b"\x00\x00\x80\x7f"  # last float becomes +inf: a torn read of a rewrite in progress
    reads = iter([bytes(torn), good])
    real = info_module.read_file

    def racing_read(p, **kwargs):
        header, _, st = real(p, **kwargs)
        return header, next(reads), st

    monkeypatch.setattr(info_module, "read_file", racing_read)
    with pytest.raises(AdapterError, match="changed while it was read; try again"):
        info_module.read_adapter_snapshot(path)
    # The same damage read twice is a damaged file, not a changing one: it loads with a warning.
    path.write_bytes(bytes(torn))
    monkeypatch.setattr(info_module, "read_file", real)
    info, _ = info_module.read_adapter_snapshot(path)
    assert any("does not match the hash recorded" in w for w in info.warnings)


# --- 2. two imports at the same moment ----------------------------------------------------------------
def test_sixteen_concurrent_imports_of_same_named_files_keep_all_sixteen(tmp_path):
    sources = []
    for i in range(16):
        folder = tmp_path / f"download-{i}"
        folder.mkdir()
        sources.append(_adapter(folder / "style.safetensors", 100 + i))
    lib = _lib(tmp_path)
    barrier = threading.Barrier(16)
    results: dict[int, object] = {}

    def run(i: int) -> None:
        barrier.wait()
        results[i] = lib.import_files([sources[i]])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r.status == "imported" for r in results.values()), [r.reason for r in results.values()]
    landed = sorted(lib.user_folder.glob("*.safetensors"))
    assert len(landed) == 16 and len({r.path for r in results.values()}) == 16
    # Every source's weights are on the shelf exactly once, at the path its import reported.
    for i, r in results.items():
        assert read_adapter_info(r.path).tensor_sha256 == read_adapter_info(sources[i]).tensor_sha256
    assert not [p for p in lib.user_folder.iterdir() if p.name.startswith(".")]  # no temp file left


# --- 3. one bad file among good ones (CLI) -----------------------------------------------------------------
def test_nested_json_file_neither_hides_good_files_nor_stops_a_batch(tmp_path, capsys):
    team = tmp_path / "team"
    team.mkdir()
    good = _adapter(team / "good.safetensors", 1)
    good2 = _adapter(team / "good2.safetensors", 2)
    bad = team / "bad.safetensors"
    bad.write_bytes((2000).to_bytes(8, "little") + b"[" * 1000 + b"]" * 1000)

    assert cli_main(["shelf", "list", "--folder", str(team)]) == 0
    out = capsys.readouterr().out
    assert "good " in out and "good2" in out and "• bad" not in out.split("skipped")[0]
    assert out.strip().splitlines()[-1] == "1 file skipped: not adapters (run with --skipped to see why)"
    assert cli_main(["shelf", "list", "--folder", str(team), "--skipped"]) == 0
    assert "bad.safetensors" in (shown := capsys.readouterr().out) and "nested too deeply" in shown

    assert cli_main(["shelf", "import", str(good), str(bad), str(good2)]) == 2
    captured = capsys.readouterr()
    assert "imported good.safetensors" in captured.out and "imported good2.safetensors" in captured.out
    assert "refused: bad.safetensors is corrupt: malformed safetensors header (nested too deeply)." in captured.err
    assert "2 of 3 files imported" in captured.err


def test_checkpoint_internals_and_other_weights_are_skipped_with_reasons(tmp_path, capsys):
    """Issue #10 item 2: after training, the shelf listed cards named "lora" and "optimizer"."""
    from app.engine.train.checkpoints import save_checkpoint

    shelf = tmp_path / "shelf"
    style = _adapter(shelf / "my-style.safetensors", 1)
    # A real checkpoint folder as the trainer writes it: a PEFT-named LoRA (a valid adapter by its header),
    # the optimiser state and state.json.
    lora = {f"{ATTN}.lora_A.weight": torch.randn(2, 32), f"{ATTN}.lora_B.weight": torch.randn(64, 2)}
    params = [torch.nn.Parameter(t.clone()) for t in lora.values()]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    params[0].grad = torch.ones_like(params[0])
    params[1].grad = torch.ones_like(params[1])
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    save_checkpoint(shelf / "my-style.checkpoints", step=10, lora=lora, optimizer=optimizer, scheduler=scheduler,
                    extra={"config": {}}, keep=2)  # fmt: skip
    torch_vae = {"encoder.conv_in.weight": torch.zeros(4, 3, 3, 3)}
    from safetensors.torch import save_file

    save_file(torch_vae, str(shelf / "some-vae.safetensors"))
    report = Library([], user_folder=shelf, bundled_folder=None).scan_report()
    assert [e.path for e in report.entries] == [style]
    reasons = {s.path.relative_to(shelf).as_posix(): s.reason for s in report.skipped}
    assert set(reasons) == {"my-style.checkpoints/step-000010/lora.safetensors",
                            "my-style.checkpoints/step-000010/optimizer.safetensors",
                            "some-vae.safetensors"}  # fmt: skip
    assert "training checkpoint" in reasons["my-style.checkpoints/step-000010/lora.safetensors"]
    assert "not a LoRA adapter" in reasons["some-vae.safetensors"]


# --- 6. permissions -----------------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def test_new_files_get_the_umask_default_and_edits_keep_permissions(tmp_path, umask):
    from app.engine.adapters import edit_metadata

    umask(0o002)  # a team that shares through group-writable files
    made = _adapter(tmp_path / "out" / "made.safetensors", 1)
    assert _mode(made) == 0o664  # was 0600 whatever the umask
    lib = _lib(tmp_path)
    imported = Path(lib.import_file(made).path)
    assert _mode(imported) == 0o664
    exported = lib.export(imported, tmp_path / "out" / "shared.safetensors")
    assert _mode(exported) == 0o664

    umask(0o077)  # whoever edits has a private umask: the shared file keeps its own permissions
    os.chmod(made, 0o664)
    edit_metadata(made, title="Renamed on the share")
    assert _mode(made) == 0o664 and read_adapter_info(made).title == "Renamed on the share"
    os.chmod(made, 0o640)
    edit_metadata(made, title="Again")
    assert _mode(made) == 0o640


# --- 8. leftovers of killed writes --------------------------------------------------------------------
def test_temp_file_of_a_write_killed_with_sigkill_is_recognisable_and_removed_when_the_shelf_is_scanned(tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    _adapter(shelf / "keep.safetensors", 1)
    killed = textwrap.dedent(
        """
        import os, signal, sys
        from app.engine.atomic import atomic_path
        with atomic_path(sys.argv[1]) as tmp:
            tmp.write_bytes(b"x" * 1_000_000)  # a big import half-way
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", killed, str(shelf / "style.safetensors")], env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    [left] = [p for p in shelf.iterdir() if p.name.startswith(".")]
    assert (
        is_temp_file_name(left.name)
        and left.name.startswith(".style.safetensors.")
        and left.stat().st_size == 1_000_000
    )

    # Not stale: a live writer's temp file (this process), and an old-style temp file touched a minute ago.
    with atomic_path(shelf / "live.safetensors") as live:
        live.write_bytes(b"in progress")
        legacy_fresh = shelf / ".old.safetensors.abcd1234.tmp"
        legacy_stale = shelf / ".older.safetensors.wxyz9876.tmp"
        for p in (legacy_fresh, legacy_stale):
            p.write_bytes(b"partial")
        two_hours_ago = time.time() - 7200
        os.utime(legacy_stale, (two_hours_ago, two_hours_ago))
        report = Library([], user_folder=shelf, bundled_folder=None).scan_report()
        assert report.stale_temps_removed == 2 and not left.exists() and not legacy_stale.exists()
        assert live.exists() and legacy_fresh.exists()
        assert [e.name for e in report.entries] == ["keep"] and not report.skipped


# --- smaller ones ---------------------------------------------------------------------------------------
def test_a_damaged_hash_cache_entry_only_costs_rehashing(tmp_path, capsys):
    from app.engine.hashcache import _cache_file, file_hashes
    from app.engine.safetensors_file import data_sha256, file_sha256

    path = _adapter(tmp_path / "team" / "a.safetensors", 1)
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    for damaged in ({**stamp}, {**stamp, "sha256": 5, "tensor_sha256": None}, "not an entry", [1, 2]):
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        _cache_file().write_text(json.dumps({str(path.resolve()): damaged}))
        assert file_hashes(path) == (file_sha256(path), data_sha256(path))
        _cache_file().write_text(json.dumps({str(path.resolve()): damaged}))
        assert cli_main(["shelf", "list", "--hashes", "--folder", str(path.parent)]) == 0
        assert file_sha256(path)[:10] in capsys.readouterr().out


def test_each_file_version_is_judged_once_per_process(tmp_path, monkeypatch):
    from app.engine.shelf import survey

    team = tmp_path / "team"
    good = _adapter(team / "a.safetensors", 1)
    (team / "junk.safetensors").write_bytes((64).to_bytes(8, "little") + b"{" * 64)
    calls: list[str] = []
    real = survey.read_adapter_info
    monkeypatch.setattr(survey, "read_adapter_info", lambda p, **kw: calls.append(Path(p).name) or real(p, **kw))
    lib = _lib(tmp_path, team)
    for _ in range(3):
        report = lib.scan_report(with_hashes=False)
        assert [e.name for e in report.entries] == ["a"] and len(report.skipped) == 1
    assert sorted(calls) == ["a.safetensors", "junk.safetensors"]
    good.write_bytes(good.read_bytes())  # a new version (mtime) is judged again
    os.utime(good, ns=(time.time_ns(), time.time_ns() + 5_000_000))
    lib.scan_report(with_hashes=False)
    assert sorted(calls) == ["a.safetensors", "a.safetensors", "junk.safetensors"]


def test_broken_links_in_a_dataset_are_listed_as_skipped(tmp_path):
    from PIL import Image

    from app.engine.train.dataset import scan_dataset

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (96, 96), (200, 30, 30)).save(data / "red.png")
    os.symlink(tmp_path / "elsewhere" / "blue.png", data / "blue.png")
    os.symlink("loop.jpg", data / "loop.jpg")
    report = scan_dataset(data)
    assert [i.path.name for i in report.items] == ["red.png"]
    reasons = {s.path.name: s.reason for s in report.skipped}
    assert set(reasons) == {"blue.png", "loop.jpg"}
    assert reasons["blue.png"] == f"broken link: its target {tmp_path / 'elsewhere' / 'blue.png'} does not exist"
