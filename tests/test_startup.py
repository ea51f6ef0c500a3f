"""Start-up (issue #16): what a cold `newsdesk ask` imports, deferred packages, and the
optimized ONNX model cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot import lazy
from bot.desk import Desk
from bot.embed import default_cache_dir, default_model_path
from bot.onnx_encoder import PROBES, OnnxEmbedder, exported
from bot.onnx_session import optimized

# Imported by nothing a question needs: ingest, parsing, fetching, feeds, the writer lock and
# hand-off, progress bars, the torch encoder, and langsmith's generated API models.
NOT_FOR_A_QUESTION = [
    "bot.parse",
    "bot.sources",
    "bot.fetch",
    "bot.ingest",
    "bot.feeds",
    "bot.handoff",
    "httpcore",
    "lxml",
    "tqdm",
    "torch",
    "sentence_transformers",
    "langsmith.types.run",
]
# ... while the answer still runs through them (the LCEL pipeline, Chroma, ONNX Runtime).
# bot.lock: a question on the embedded store waits for a command-line writer (bot/reads.py).
FOR_A_QUESTION = ["langchain_core.runnables.base", "chromadb", "onnxruntime", "bot.lock"]

COLD_ASK = """
import json, sys
from bot.cli import main
try:
    main(["ask", "How much did Turkey pay for the S-400?"])
except SystemExit as exc:
    assert not exc.code, exc.code
print("MODULES " + json.dumps(sorted(sys.modules)))
"""


def test_a_cold_ask_imports_only_what_a_question_needs(seeded: Desk, tmp_path: Path) -> None:
    shutil.copytree(seeded.settings.corpus_dir, tmp_path / "corpus")
    shutil.copytree(seeded.settings.index_dir, tmp_path / "index")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env |= {
        "NEWSDESK_CORPUS_DIR": str(tmp_path / "corpus"),
        "NEWSDESK_INDEX_DIR": str(tmp_path / "index"),
    }
    done = subprocess.run(
        [sys.executable, "-c", COLD_ASK],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer, _, modules = done.stdout.rpartition("MODULES ")
    assert "[1]" in answer and "S-400" in answer  # a real, cited answer was given
    loaded = set(json.loads(modules))
    assert [m for m in NOT_FOR_A_QUESTION if m in loaded] == []
    assert [m for m in FOR_A_QUESTION if m not in loaded] == []


def test_deferred_langsmith_types_still_give_the_real_models() -> None:
    code = (
        "import bot, sys\n"
        "import langchain_core.runnables.base\n"
        "assert 'langsmith.types.run' not in sys.modules\n"
        "from langsmith.types import RunSelectField, Run\n"
        "import langsmith.types.run as run\n"
        "assert Run is run.Run and 'ID' in RunSelectField.__args__\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package whose __init__ counts its runs (in a sibling module) and defines NAME."""
    root = tmp_path / "site"
    (root / "heavy_pkg").mkdir(parents=True)
    (root / "heavy_count.py").write_text("runs = []\n")
    (root / "heavy_pkg" / "__init__.py").write_text(
        "import heavy_count\nheavy_count.runs.append(1)\nNAME = 'from init'\n"
    )
    (root / "heavy_pkg" / "light.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(root))
    for name in ("heavy_pkg", "heavy_pkg.light", "heavy_count"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield "heavy_pkg"
    for name in ("heavy_pkg", "heavy_pkg.light", "heavy_count"):
        sys.modules.pop(name, None)


def test_a_deferred_package_runs_its_init_once_on_first_use(package: str) -> None:
    import heavy_count  # type: ignore[import-not-found]

    assert lazy.defer(package)
    from heavy_pkg.light import VALUE  # type: ignore[import-not-found]

    assert VALUE == 42 and heavy_count.runs == []  # a submodule alone: __init__ not run
    import heavy_pkg  # type: ignore[import-not-found]

    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(heavy_pkg.NAME)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert got == ["from init"] * 8 and heavy_count.runs == [1]
    with pytest.raises(AttributeError):
        _ = heavy_pkg.MISSING


def test_defer_leaves_imported_missing_and_plain_modules_alone(package: str) -> None:
    import heavy_pkg  # type: ignore[import-not-found]

    assert not lazy.defer(package)  # already imported: untouched
    assert heavy_pkg.NAME == "from init"
    assert not lazy.defer("no_such_package_anywhere")
    assert not lazy.defer("json.decoder")  # a module, not a package


# -- the optimized ONNX model ----------------------------------------------------------------


@pytest.fixture
def onnx_copy(tmp_path: Path) -> Path:
    """The exported model, linked into a cache of the test's own."""
    source = exported(Path(default_model_path()), default_cache_dir())
    link = tmp_path / source.name
    link.symlink_to(source)
    return link


def sentences() -> list[str]:
    text = (Path(__file__).resolve().parent.parent / "corpus").rglob("*.md")
    return PROBES + [line for p in sorted(text)[:5] for line in p.read_text().splitlines()[-6:]]


def test_the_optimized_model_gives_the_same_vectors(onnx_copy: Path) -> None:
    path = Path(default_model_path())
    plain = OnnxEmbedder(path, onnx_copy, optimize=False)
    fast = OnnxEmbedder(path, onnx_copy)
    model = optimized(onnx_copy)
    assert model is not None and model.exists() and (model.parent / "weights.bin").exists()
    texts = [t for t in sentences() if t.strip()]
    a, b = plain.encode_passages(texts), fast.encode_passages(texts)
    assert np.min(np.sum(a * b, axis=1)) > 0.99999


def test_a_killed_or_broken_optimized_model_is_made_again(onnx_copy: Path) -> None:
    model = optimized(onnx_copy)
    assert model is not None
    folder = model.parent
    stale = folder.with_name(folder.name + ".999999.tmp")  # a writer killed mid-write
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half")
    (folder / "weights.bin").write_bytes(b"cut short")  # a disk that lied
    path = Path(default_model_path())
    vectors = OnnxEmbedder(path, onnx_copy).encode_queries(["Who won the election?"])
    reference = OnnxEmbedder(path, onnx_copy, optimize=False).encode_queries(
        ["Who won the election?"]
    )
    assert float(np.sum(vectors * reference)) > 0.99999  # answered from the original
    assert not folder.exists()  # the broken copy is gone ...
    again = optimized(onnx_copy)  # ... and the next start makes a good one
    assert again is not None and (again.parent / "weights.bin").stat().st_size > 1_000_000
    assert not stale.exists()


def test_an_onnx_runtime_upgrade_removes_the_copy_the_old_version_made(onnx_copy: Path) -> None:
    """Each copy is ~90 MB: an image upgraded monthly would fill the volume with them."""
    old = onnx_copy.with_name(f"{onnx_copy.stem}.ort-1.0.0")
    old.mkdir()
    (old / "weights.bin").write_bytes(b"weights of a version no longer installed")
    old.with_name(old.name + ".lock").touch()
    other = onnx_copy.with_name("another-model.ort-1.0.0")  # another model's copy: kept
    other.mkdir()
    model = optimized(onnx_copy)
    assert model is not None and model.exists()
    assert not old.exists() and not old.with_name(old.name + ".lock").exists()
    assert other.exists()
