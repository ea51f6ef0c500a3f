"""The ONNX Runtime encoder: same vectors as torch, no torch for a question, one export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, MakeDesk, run_cli, settings_for

from bot.chunk import embed_text
from bot.desk import Desk
from bot.embed import BulkOnTorch, Embedder, TorchEmbedder, default_model_path, load_embedder
from bot.errors import IndexUnavailable
from bot.manifest import BuiltWith, check
from bot.onnx_encoder import MIN_COSINE, OnnxEmbedder, exported
from bot.sentence_store import cuts


@pytest.fixture(scope="module")
def torch_fp32() -> TorchEmbedder:
    return TorchEmbedder(dtype="float32")


@pytest.fixture(scope="module")
def onnx(embedder: Embedder) -> OnnxEmbedder:
    fast = getattr(embedder, "fast", embedder)  # auto may wrap ONNX with torch for bulk
    assert isinstance(fast, OnnxEmbedder), "auto should run the bundled model on ONNX Runtime"
    return fast


def real_chunks(desk: Desk) -> list[str]:
    rows = desk.store.db.execute(
        "SELECT a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id"
    ).fetchall()
    return [embed_text(title, text) for title, text in rows]


def test_onnx_vectors_match_torch_on_the_corpus_chunks(
    seeded: Desk, torch_fp32: TorchEmbedder, onnx: OnnxEmbedder
) -> None:
    texts = real_chunks(seeded)
    assert len(texts) > 200
    cosines = np.sum(torch_fp32.encode(texts) * onnx.encode_passages(texts), axis=1)
    assert cosines.min() >= MIN_COSINE, f"worst chunk cosine {cosines.min():.5f}"
    # Questions too, one at a time and in a batch of mixed lengths (padding must not leak).
    questions = ["Who won?", "What did the European Union decide about Russian gas imports?"]
    alone = np.vstack([onnx.encode_queries([q]) for q in questions])
    together = onnx.encode_queries(questions)
    assert np.allclose(alone, together, atol=1e-4)
    assert np.sum(alone * torch_fp32.encode(questions), axis=1).min() >= MIN_COSINE


def test_an_ingest_stores_sentence_vectors_the_composer_would_compute(
    seeded: Desk, embedder: Embedder, onnx: OnnxEmbedder
) -> None:
    """A bulk ingest encodes the sentences it stores on torch bfloat16 (BulkOnTorch), the
    composer on ONNX float32: the two must agree, or stored answers would drift from computed
    ones (the sentences are stored under the composer's encoder key)."""
    if not isinstance(embedder, BulkOnTorch):
        pytest.skip("this CPU has no native bfloat16: ingest encodes sentences on ONNX too")
    sentences = list(dict.fromkeys(s for t in real_chunks(seeded) for s in split(t)))
    sentences = sentences[: BulkOnTorch.BULK_SENTENCES]
    assert len(sentences) == BulkOnTorch.BULK_SENTENCES
    stored = embedder.encode_bulk(sentences)
    assert embedder._bulk is not None, "a bulk ingest's sentences should be encoded on torch"
    cosines = np.sum(stored * onnx.encode(sentences), axis=1)
    assert cosines.min() >= MIN_COSINE, f"worst sentence cosine {cosines.min():.5f}"
    assert float(np.median(cosines)) >= 0.999


def split(text: str) -> list[str]:
    return [text[a:b] for a, b in cuts(text, "en")]


def test_both_backends_cut_the_same_chunks(
    seeded: Desk, torch_fp32: TorchEmbedder, onnx: OnnxEmbedder
) -> None:
    """Token counts decide where chunks end: the backends must agree on every text."""
    texts = [*real_chunks(seeded)[:100], "", "naïve café — 東京 😀", "a" * 3000, "x\u200by"]
    assert [onnx.count_tokens(t) for t in texts] == [torch_fp32.count_tokens(t) for t in texts]
    assert (onnx.max_tokens, onnx.dimension) == (torch_fp32.max_tokens, torch_fp32.dimension)


def test_an_index_built_on_torch_is_queried_on_onnx(
    tmp_path: Path, torch_fp32: TorchEmbedder, onnx: OnnxEmbedder
) -> None:
    built = Desk(settings_for(tmp_path), embedder=torch_fp32)
    report = built.ingestor.ingest([ROOT / "corpus" / "2016"])
    assert report.added and not report.failed
    asked = Desk(settings_for(tmp_path), embedder=onnx)
    answer = asked.ask("Who was elected in the Hong Kong legislative election?")
    assert answer.citations, "a torch-built index must answer on ONNX vectors"
    assert "hong kong" in answer.citations[0].title.lower()


def test_vectors_of_another_backend_are_refused(seeded: Desk, onnx: OnnxEmbedder) -> None:
    current = seeded.ingestor.built_with
    assert current.backend in {"onnx", "torch"}
    check(seeded.store, BuiltWith(current.model, current.dimension, current.chunker, "torch"))
    int8 = BuiltWith(current.model, current.dimension, current.chunker, "onnx-int8")
    with pytest.raises(IndexUnavailable, match=r"onnx-int8.*reindex"):
        check(seeded.store, int8)


def test_a_bad_backend_setting_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDESK_EMBEDDING_BACKEND", "gpu")
    code, _, err = run_cli(["ask", "anything"], capsys)
    assert code == 1
    assert "NEWSDESK_EMBEDDING_BACKEND" in err and "Traceback" not in err


ASK_AND_LIST_MODULES = """
import json, sys
from bot.cli import main
try:
    main(["ask", "--json", sys.argv[1]])
except SystemExit as exc:
    code = exc.code
heavy = ["torch", "sentence_transformers", "transformers", "pypdf", "trafilatura",
         "langchain_openai", "docx"]
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}),
      file=sys.stderr)
"""


def test_a_question_from_the_terminal_loads_no_torch(
    make_desk: MakeDesk, tmp_path: Path, embedder: Embedder
) -> None:
    desk = make_desk()
    assert desk.ingestor.ingest([ROOT / "corpus" / "2016"]).added
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env.update(
        NEWSDESK_CORPUS_DIR=str(tmp_path / "corpus"),
        NEWSDESK_INDEX_DIR=str(tmp_path / "index"),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    run = subprocess.run(
        [sys.executable, "-c", ASK_AND_LIST_MODULES, "Who won the Hong Kong election?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(run.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}, run.stderr[-2000:]
    assert json.loads(run.stdout)["citations"]


EXPORT = """
import sys
from pathlib import Path
from bot.embed import default_model_path
from bot.onnx_encoder import exported
print(exported(Path(default_model_path()), Path(sys.argv[1])))
"""


@pytest.mark.slow
def test_export_survives_a_kill_and_two_processes_export_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    }
    cmd = [sys.executable, "-c", EXPORT, str(cache)]
    killed = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        # Killed while writing: wait until the partial file has bytes, then kill.
        while killed.poll() is None and not any(
            p.stat().st_size for p in cache.glob("*.tmp") if p.exists()
        ):
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.wait(timeout=60)
    assert not list(cache.glob("*.onnx")), "a killed export must not leave a model behind"
    # What an upgrade leaves: the last version's export, unused for 40 days, and its copy;
    # another deployment's export, used today, stays.
    stale, current = cache / "model-0000000000000000.onnx", cache / "other-1111111111111111.onnx"
    for planted in (stale, current):
        planted.write_bytes(b"an older export")
        (cache / f"{planted.stem}.ort-1.0.0").mkdir()
    long_ago = time.time() - 40 * 86400
    os.utime(stale, (long_ago, long_ago))

    both = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    paths = {p.communicate(timeout=600)[0].strip() for p in both}
    assert all(p.returncode == 0 for p in both)
    assert len(paths) == 1 and sorted(str(p) for p in cache.glob("*.onnx")) == sorted(
        [*paths, str(current)]
    )
    assert not list(cache.glob(f"{stale.stem}*")), "the unused export and its copy are gone"
    assert (cache / f"{current.stem}.ort-1.0.0").is_dir()
    fresh = OnnxEmbedder(Path(default_model_path()), Path(paths.pop()))
    assert exported(Path(default_model_path()), cache).exists()
    vector = fresh.encode_queries(["Who won the election?"])
    reference = load_embedder(backend="onnx").encode_queries(["Who won the election?"])
    assert float(np.sum(vector * reference)) > 0.999
