"""Every kind of hostile adapter file (tests/helpers/hostile_files.py) through inspect, import, the shelf scan and
generate: no traceback anywhere, a one-line reason, and the good files beside it still listed and usable.

The generator (tiny SD1 model) is built once for the module; refusals happen before sampling, and the
few files that load get 2-step 64 px images.
"""

from __future__ import annotations

import collections
import re
import shutil

import pytest

from app.cli import main as cli_main
from app.engine.errors import UserError
from tests.helpers.hostile_files import KINDS, Good, Kind
from tests.helpers.loras import make_lora

_STAGES = ("inspect", "import", "scan", "generate")


def _one_line(text: str) -> str:
    text = text.strip()
    assert text and "\n" not in text and "Traceback" not in text, text
    assert len(text) < 600, f"{len(text)} characters: {text[:200]}…"
    return text


@pytest.fixture(scope="module")
def goods(tiny_sd15, tmp_path_factory):
    folder = tmp_path_factory.mktemp("goods")
    return [make_lora(tiny_sd15, folder / f"good-{i}.safetensors", family="sd1", seed=10 + i) for i in (1, 2)]


@pytest.fixture(scope="module")
def good(goods):
    return Good.read(goods[0])


@pytest.fixture(scope="module")
def generator(tiny_sd15):
    from app.engine.generate import Generator

    return Generator(tiny_sd15)


def _generate(generator, stack_paths, out_dir):
    from app.engine.generate import GenerateConfig
    from app.engine.shelf.stack import StackEntry

    stack = [StackEntry(str(stack_paths[0]), weight=0.5), *(StackEntry(str(p)) for p in stack_paths[1:])]
    config = GenerateConfig(prompt="a red circle", steps=2, seed=1, width=64, height=64, out_dir=str(out_dir),
                            preview_every=0, stack=stack)  # fmt: skip
    return generator.generate(config)


def test_the_corpus_is_big_enough_and_covers_every_outcome():
    assert len(KINDS) >= 25 and len({k.name for k in KINDS}) == len(KINDS)
    counts = {stage: collections.Counter(k.expect[stage] for k in KINDS) for stage in _STAGES}
    assert counts["inspect"]["refuse"] >= 25 and counts["inspect"]["warn"] >= 3
    assert counts["generate"]["image"] >= 2 and counts["scan"]["skipped"] >= 25


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_hostile_file_gets_a_reason_and_hides_nothing(kind: Kind, tmp_path, goods, good, generator, capsys):
    from app.engine.shelf.library import Library

    team = tmp_path / "team"
    team.mkdir()
    good_copies = [shutil.copy(g, team / g.name) for g in goods]
    path = kind.build(team / f"{kind.name}.safetensors", good)
    capsys.readouterr()

    # inspect: the CLI, in-process, so any exception other than a UserError fails the test with its traceback
    rc = cli_main(["shelf", "inspect", str(path)])
    out, err = capsys.readouterr()
    if kind.expect["inspect"] == "refuse":
        assert rc == 2 and not out
        line = _one_line(err)
        assert line.startswith("styleshelf: error: ") and re.search(kind.reason, line), line
    else:
        assert rc == 0, err
        flags = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("⚠")]
        if kind.expect["inspect"] == "warn":
            assert any(re.search(kind.reason, f) for f in flags), out

    # import, as a batch between two good files: every file gets its outcome, the good ones land
    lib = Library([], bundled_folder=None)
    results = lib.import_files([good_copies[0], path, good_copies[1]])
    assert [r.status for r in results][::2] == ["imported", "imported"], results
    assert results[1].status == kind.expect["import"], results[1]
    if results[1].status != "imported":
        _one_line(results[1].reason)

    # the shelf scan over the folder: both good files listed; the hostile one skipped with a reason, or listed
    report = Library([team], bundled_folder=None, user_folder=tmp_path / "empty-user").scan_report(with_hashes=False)
    listed = {e.path.name for e in report.entries}
    assert {"good-1.safetensors", "good-2.safetensors"} <= listed
    skipped = {s.path.name: s.reason for s in report.skipped}
    where = {
        "skipped": path.name in skipped,
        "listed": path.name in listed,
        "absent": path.name not in {*skipped, *listed},
    }
    assert where[kind.expect["scan"]], (kind.expect["scan"], listed, skipped)
    for reason in skipped.values():
        _one_line(reason)

    # generate with a good style and the hostile file on the stack
    out_dir = tmp_path / "images"
    if kind.expect["generate"] == "image":
        [image] = _generate(generator, [good_copies[0], path], out_dir)
        assert image.path.is_file()
    else:
        with pytest.raises(UserError) as refused:
            _generate(generator, [good_copies[0], path], out_dir)
        message = _one_line(str(refused.value))
        assert path.name in message or path.stem in message, message  # names the culprit
        assert not out_dir.exists() or not list(out_dir.glob("*.png"))  # no black PNG saved


def test_the_generator_still_works_after_the_corpus(generator, goods, tmp_path):
    """Run last in this module: the refusals above left no half-loaded adapter behind."""
    [image] = _generate(generator, goods, tmp_path)
    assert image.path.is_file()
