"""Shared helpers for the benchmarks: dev-eval loading, index building, the LangChain baseline.

The dev-eval data is read at run time from the path given on the command line; nothing of it is
copied into the project.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Settings
from bot.corpus import assign_id
from bot.desk import Desk
from bot.embed import Embedder
from bot.models import Article

ROOT = Path(__file__).resolve().parent
BASELINE_CHUNK = 1000
BASELINE_OVERLAP = 200
BASELINE_K = 4


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def article_id(doc_id: str) -> str:
    """Our article id for a dev-eval doc id (the JSONL parser maps doc_id to Article.id)."""
    return assign_id(Article(title="", text="", id=doc_id))


def sample(
    records: list[dict[str, Any]], questions: list[dict[str, Any]], n: int, work: Path
) -> list[dict[str, Any]]:
    """The first n articles (doc ids are hashes: file order is random) and the gold articles
    of the `gold` questions, so that every `gold` question keeps its label; in file order."""
    gold = {d for q in questions if q["support"] == "gold" for d in q["gold_doc_ids"]}
    chosen = [r for i, r in enumerate(records) if i < n or r["doc_id"] in gold]
    path = work / f"sample-{n}.jsonl"
    if not path.exists():
        write_jsonl(path, chosen)
    return chosen


def relabel(questions: list[dict[str, Any]], kept: set[str]) -> list[dict[str, Any]]:
    """`support` as it holds for a sampled corpus: `gold` only while the gold article is in it,
    else `silver` while some article that contains the answer string is, else `none`."""
    out = []
    for q in questions:
        support = q["support"]
        has_answer = bool(set(q.get("answer_found_in_doc_ids") or []) & kept)
        if support == "gold" and not set(q.get("gold_doc_ids") or []) & kept:
            support = "silver" if has_answer else "none"
        elif support == "silver" and not has_answer:
            support = "none"
        out.append({**q, "support": support})
    return out


def parse_day(text: str) -> dt.date | None:
    return dt.datetime.strptime(text, "%Y/%m/%d").date() if text else None


def gold_ids(question: dict[str, Any], doc_ids: set[str]) -> set[str]:
    """The gold articles as our ids; a "-v2" doc is a re-crawl of the same URL and counts too."""
    gold = set()
    for doc in question.get("gold_doc_ids") or []:
        gold.add(article_id(doc))
        if f"{doc}-v2" in doc_ids:
            gold.add(article_id(f"{doc}-v2"))
    return gold


def normalize(text: str) -> str:
    """Lower case, quotes and punctuation gone, single spaces: for answer-string matching."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def contains_answer(answers: list[str], quotes: list[str]) -> bool:
    haystack = f" {normalize(' '.join(quotes))} "
    return any(a and f" {a} " in haystack for a in (normalize(x) for x in answers))


def distinct(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def rank_of(ranked: list[str], gold: set[str]) -> int:
    """1-based rank of the first gold article, 0 when absent."""
    for i, aid in enumerate(ranked, start=1):
        if aid in gold:
            return i
    return 0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[pos]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        cores = str(os.cpu_count())
    import torch

    return (
        f"{cores} cores (nproc), {cpu}, {ram:.0f} GiB RAM, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def settings_for(folder: Path, **overrides: Any) -> Settings:
    """Settings from the environment (NEWSDESK_*), with corpus and index under `folder`."""
    overrides.setdefault("max_file_mb", 100.0)  # the RealTime QA corpus is one 36 MB JSONL file
    return Settings(corpus_dir=folder / "corpus", index_dir=folder / "index", **overrides)


def index_key(settings: Settings, embedder: Embedder, corpus: Path) -> str:
    """Changes whenever what ours indexes would change: chunker code, model, dtype, corpus."""
    chunker = (Path(__file__).resolve().parent.parent / "bot" / "chunk.py").read_text()
    parts = [
        chunker,
        embedder.name,
        embedder.dtype,
        str(settings.chunk_tokens),
        str(settings.chunk_overlap_tokens),
        str(corpus.stat().st_size),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]


def build_ours(
    corpus: Path, folder: Path, embedder: Embedder, fresh: bool = False, **overrides: Any
) -> tuple[Desk, dict[str, Any]]:
    """Ingest `corpus` (JSONL) into folder/corpus + folder/index; reused when complete."""
    if fresh and folder.exists():
        shutil.rmtree(folder)
    settings = settings_for(folder, **overrides)
    desk = Desk(settings, embedder=embedder)
    marker = folder / "complete.json"
    if marker.exists():
        return desk, json.loads(marker.read_text())
    start = time.perf_counter()
    report = desk.ingestor.ingest([corpus])
    seconds = time.perf_counter() - start
    stats = {
        "articles": len(report.added) + len(report.updated) + len(report.unchanged),
        "embedded_articles": len(report.added) + len(report.updated),
        "chunks": desk.store.count_chunks(),
        "embedded_chunks": sum(report.chunks.values()),
        "seconds": seconds,
        "failed": len(report.failed),
    }
    if report.failed:  # a record without text is refused by the parser, as it should be
        print(f"not ingested: {report.failed[:5]}", flush=True)
    if not stats["articles"]:
        raise SystemExit("nothing was ingested")
    marker.write_text(json.dumps(stats))
    return desk, stats


def chunk_texts(desk: Desk) -> list[str]:
    """What ours embedded for each stored chunk (title + chunk text), in article order."""
    from bot.chunk import embed_text

    rows = desk.store.db.execute(
        "SELECT a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id "
        "ORDER BY a.id, c.ordinal"
    ).fetchall()
    return [embed_text(title, text) for title, text in rows]


def open_baseline(folder: Path, embedder: Embedder) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma

    client = chromadb.PersistentClient(
        path=str(folder), settings=ChromaSettings(anonymized_telemetry=False)
    )
    return Chroma(
        collection_name="baseline", embedding_function=embedder.as_langchain(), client=client
    )


def build_baseline(
    records: list[dict[str, Any]], folder: Path, embedder: Embedder, fresh: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The plain LangChain recipe: 1000/200-character chunks, same model, its own Chroma."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    store = open_baseline(folder, embedder)
    marker = folder / "complete.json"
    if marker.exists():
        return store, json.loads(marker.read_text())
    start = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=BASELINE_CHUNK, chunk_overlap=BASELINE_OVERLAP
    )
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    ids: list[str] = []
    for record in records:
        aid = article_id(record["doc_id"])
        for i, piece in enumerate(splitter.split_text(record["text"])):
            texts.append(piece)
            metas.append({"article_id": aid, "title": record["title"]})
            ids.append(f"{aid}:{i}")
    for at in range(0, len(texts), 512):
        store.add_texts(texts[at : at + 512], metas[at : at + 512], ids=ids[at : at + 512])
    stats = {
        "articles": len(records),
        "chunks": len(texts),
        "seconds": time.perf_counter() - start,
    }
    marker.write_text(json.dumps(stats))
    return store, stats
