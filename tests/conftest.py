"""Shared fixtures: one real embedding model per session, real Chroma and SQLite in tmp dirs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bot.config import Settings
from bot.desk import Desk
from bot.embed import Embedder, load_embedder

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
MakeDesk = Callable[..., Desk]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`newsdesk ARGS` in this process: (exit code, stdout, stderr)."""
    from bot.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out, err


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder()


def settings_for(root: Path, **overrides: object) -> Settings:
    """Settings that never read the developer's environment or .env."""
    values: dict[str, object] = {"corpus_dir": root / "corpus", "index_dir": root / "index"}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def make_desk(tmp_path: Path, embedder: Embedder) -> MakeDesk:
    """A fresh, empty desk in tmp_path (call again for a second process on the same dirs)."""

    def make(**overrides: object) -> Desk:
        return Desk(settings_for(tmp_path, **overrides), embedder=embedder)

    return make


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Desk:
    """The project's own corpus/ (seed + 43 Wikinews articles), indexed once; read-only."""
    root = tmp_path_factory.mktemp("seeded")
    shutil.copytree(CORPUS, root / "corpus")
    desk = Desk(settings_for(root), embedder=embedder)
    report = desk.ingestor.ingest([desk.corpus.root])
    assert not report.failed and len(report.added) == 44
    return desk
