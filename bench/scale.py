"""Scale: retrieval and answer latency, disk, memory, open time and ingest rate at 10k-1M chunks.

    .venv/bin/python bench/scale.py ../shared/dev-eval --work /work/scale-work \
        [--sizes 10000,100000,1000000] [--seed-articles 200] [--remeasure] [--baseline OLD.jsonl]

Embedding a million chunks on 2 cores takes hours, so the big indexes are grown from a real seed:
the first --seed-articles RealTime QA articles are ingested by the real pipeline (their chunk
texts and vectors), then replicated. Replica r of a seed article keeps its title and chunk texts
(so the keyword index holds real text), gets a new id, an outlet drawn from the seed's outlets
and a date drawn uniformly from the seed's date range (seeded RNG), and each chunk vector is the
seed vector plus Gaussian noise (sigma per dimension, --noise), renormalised. One index is grown
in steps and measured at each size, embedded, then through a `chroma run` server on the same
files. Every measurement runs in a fresh process (open time and peak memory are its own).
Writes bench/results/scale.md and scale.png.

Each size's figures are appended to WORK/scale-results.jsonl and a size already there is not
measured again. To measure with new code: `--remeasure` (the grown index must not have grown
past the size: it only grows), or a fresh --work folder (copy WORK/seed/ into it to skip the
seed ingest; copy a bigger WORK/grown/ in to measure that size without growing it again).
`--baseline` puts an earlier run's rows (its scale-results.jsonl) in the table as "before".
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, machine, parse_day, percentile, read_jsonl, settings_for, write_jsonl

from bot import fts, sentence_store
from bot.desk import Desk
from bot.keyword import POSTINGS_BUDGET
from bot.models import Filters
from bot.query import keyword_query

# The keyword query before bot/keyword.py (every term, joined per row), timed in the same
# process right after the current one: the baseline of the keyword side's speed-up.
JOINED = (
    "SELECT f.chunk_id, -bm25(chunks_fts, 0.0, 2.0, 1.0) AS score FROM chunks_fts f "
    "JOIN chunks c ON c.id = f.chunk_id JOIN articles a ON a.id = c.article_id "
    "WHERE chunks_fts MATCH ? ORDER BY score DESC LIMIT ?"
)


def seed(dev_eval: Path, work: Path, n: int) -> tuple[Desk, list[dict[str, Any]]]:
    """The first n articles through the real pipeline; the rest are held out for ingest rate."""
    records = read_jsonl(dev_eval / "realtimeqa" / "corpus.jsonl")
    folder = work / "seed"
    desk = Desk(settings_for(folder))
    if not (folder / "complete.json").exists():
        path = folder / "seed.jsonl"
        write_jsonl(path, records[:n])
        start = time.perf_counter()
        report = desk.ingestor.ingest([path])
        seconds = time.perf_counter() - start
        stats = {"articles": len(report.added), "chunks": desk.store.count_chunks(), "s": seconds}
        (folder / "complete.json").write_text(json.dumps(stats))
    return desk, records[n : n + 400]


def seed_rows(desk: Desk) -> tuple[list[dict[str, Any]], np.ndarray]:
    rows = desk.store.db.execute(
        'SELECT c.id, c.article_id, c.ordinal, c.start, c."end", c.text, a.title, a.source, '
        "a.published, a.url, a.language FROM chunks c JOIN articles a ON a.id = c.article_id "
        "ORDER BY c.article_id, c.ordinal"
    ).fetchall()
    keys = ["id", "article_id", "ordinal", "start", "end", "text", "title", "source"]
    keys += ["published", "url", "language"]
    chunks = [dict(zip(keys, r, strict=True)) for r in rows]
    found = desk.store.vectors([c["id"] for c in chunks])
    chunks = [c for c in chunks if c["id"] in found]
    return chunks, np.vstack([found[c["id"]] for c in chunks])


def grow(target: Path, seed_desk: Desk, size: int, noise: float, rng: random.Random) -> float:
    """Add replicas until the index holds `size` chunks; returns chunks/s of the bulk load."""
    chunks, vectors = seed_rows(seed_desk)
    desk = Desk(settings_for(target), embedder=seed_desk.embedder)
    store = desk.store
    have = store.count_chunks()
    if have >= size:
        return 0.0
    if have == 0:
        for key in ("built_with",):
            store.set_meta(key, seed_desk.store.get_meta(key) or "")
    outlets = sorted({c["source"] for c in chunks if c["source"]}) or ["Wire"]
    days = sorted({c["published"] for c in chunks if c["published"]})
    first, last = dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1])
    span = (last - first).days
    by_article: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_article.setdefault(c["article_id"], []).append(i)
    gen = np.random.default_rng(rng.randrange(2**32))
    try:
        batch_size = min(5000, store.collection._client.get_max_batch_size())
    except AttributeError:
        batch_size = 1000
    start, added = time.perf_counter(), 0
    replica = int(store.get_meta("scale_replica") or "0")
    while have + added < size:
        replica += 1
        pending: list[tuple[dict[str, Any], str, str, str, np.ndarray]] = []
        for aid, idx in by_article.items():
            new_id = hashlib.sha256(f"{aid}:{replica}".encode()).hexdigest()[:16]
            source = rng.choice(outlets)
            day = (first + dt.timedelta(days=rng.randint(0, span))).isoformat()
            noisy = vectors[idx] + gen.normal(0.0, noise, (len(idx), vectors.shape[1]))
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            for j, i in enumerate(idx):
                pending.append((chunks[i], new_id, source, day, noisy[j].astype(np.float32)))
            if have + added + len(pending) >= size:
                break
        for at in range(0, len(pending), batch_size):
            part = pending[at : at + batch_size]
            _write(store, part)
        added += len(pending)
        store.set_meta("scale_replica", str(replica))
        print(f"  {have + added} chunks", flush=True)
    store.set_meta("vector_store", store.collection.identity())
    store.close()
    return added / (time.perf_counter() - start)


def _write(store: Any, part: list[tuple[dict[str, Any], str, str, str, np.ndarray]]) -> None:
    from bot.query import date_key

    ids = [f"{aid}-{c['ordinal']}" for c, aid, _, _, _ in part]
    store.collection.upsert(
        ids=ids,
        embeddings=np.vstack([v for *_, v in part]).tolist(),
        metadatas=[
            {
                "article_id": aid,
                "ordinal": c["ordinal"],
                "published": date_key(dt.date.fromisoformat(day)),
                "source": source.lower(),
            }
            for c, aid, source, day, _ in part
        ],
    )
    now = dt.datetime.now(dt.UTC).isoformat()
    articles = {
        aid: (aid, "", "scale", c["title"], source, day, c["url"], c["language"], 0, "ready", now)
        for c, aid, source, day, _ in part
    }
    with store.db:
        store.db.executemany(
            "INSERT OR IGNORE INTO articles (id, path, content_hash, title, source, published, "
            "url, language, n_chunks, state, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            list(articles.values()),
        )
        store.db.executemany(
            'INSERT INTO chunks (id, article_id, ordinal, start, "end", text) VALUES (?,?,?,?,?,?)',
            [
                (i, aid, c["ordinal"], c["start"], c["end"], c["text"])
                for i, (c, aid, *_) in zip(ids, part, strict=True)
            ],
        )
        for language in {c["language"] for c, *_ in part}:  # folded, in its language's table
            sql, fts_rows = fts.rows_for(
                language,
                [
                    (i, c["title"], c["text"])
                    for i, (c, *_) in zip(ids, part, strict=True)
                    if c["language"] == language
                ],
            )
            store.db.executemany(sql, fts_rows)
        store.db.execute(
            "UPDATE articles SET n_chunks = (SELECT count(*) FROM chunks WHERE article_id = "
            "articles.id) WHERE content_hash = 'scale' AND n_chunks = 0"
        )


def fill_sentences(index: Path, batch: int = 2000) -> int:
    """Sentence vectors for the chunks of an index grown before they were stored (grow()
    writes chunks directly, not through ingest); replicas share texts, so each distinct
    sentence is encoded once. Returns the chunks filled."""
    desk = Desk(settings_for(index))
    store, embedder = desk.store, desk.embedder
    key = sentence_store.encoder_key(embedder)
    known: dict[str, np.ndarray] = {}
    filled = 0
    while rows := store.chunks_without_sentences(key, batch):
        store.add_sentences(key, sentence_store.compute(embedder, rows, known))
        filled += len(rows)
        print(f"  sentence vectors: {filled} chunks, {len(known)} distinct sentences", flush=True)
    store.close()
    return filled


def measure(args: argparse.Namespace) -> None:
    """One fresh process: open, questions one at a time, keyword side, ingest; prints JSON."""
    t0 = time.perf_counter()
    overrides: dict[str, Any] = {"chroma_url": args.url} if args.url else {}
    desk = Desk(settings_for(args.index, **overrides))
    desk.store.count_chunks()
    desk.retriever  # noqa: B018  (opens the model and checks the manifest)
    questions = read_jsonl(args.dev_eval / "realtimeqa" / "questions.jsonl")[: args.questions]
    first = time.perf_counter()
    desk.ask(questions[0]["question"])
    opened = {"open_s": first - t0, "first_answer_s": time.perf_counter() - t0}
    retrieval, answers, keyword, dense, joined = [], [], [], [], []
    for q in questions[1:]:
        filters = Filters(as_of=parse_day(q["question_date"]))
        start = time.perf_counter()
        vector, _ = desk.retriever.retrieve(q["question"], filters)
        retrieval.append(time.perf_counter() - start)
        start = time.perf_counter()
        desk.ask(q["question"], filters)
        answers.append(time.perf_counter() - start)
        start = time.perf_counter()
        desk.store.keyword_search(q["question"], 30, filters)
        keyword.append(time.perf_counter() - start)
        start = time.perf_counter()
        desk.store.dense_search(vector, 30, filters)
        dense.append(time.perf_counter() - start)
        start = time.perf_counter()
        desk.store.db.execute(JOINED, (keyword_query(q["question"]), 30)).fetchall()
        joined.append(time.perf_counter() - start)
    result: dict[str, Any] = {**opened, "chunks": desk.store.count_chunks()}
    for name, values in [("retrieval", retrieval), ("answer", answers)]:
        result[f"{name}_p50"] = statistics.median(values)
        result[f"{name}_p95"] = percentile(values, 95)
    result["keyword_p50"] = statistics.median(keyword)
    result["keyword_p95"] = percentile(keyword, 95)
    result["dense_p50"] = statistics.median(dense)
    result["dense_p95"] = percentile(dense, 95)
    result["joined_p50"] = statistics.median(joined)
    result["joined_p95"] = percentile(joined, 95)
    result["load"] = os.getloadavg()[0]
    result["peak_mb"] = peak_mb("self")
    if args.ingest:  # after the peak of answering: a big ingest batch may load torch
        start = time.perf_counter()
        report = desk.ingestor.ingest([args.ingest])
        result["ingest_articles_s"] = len(report.added) / (time.perf_counter() - start)
    print("RESULT " + json.dumps(result), flush=True)


def peak_mb(pid: str) -> float:
    """The process's own peak resident memory (VmHWM; ru_maxrss would carry the parent's peak
    across fork + exec on Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) / 1024


def run_measure(
    index: Path, dev_eval: Path, questions: int, url: str = "", ingest: Path | None = None
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, str(dev_eval), "--measure", str(index)]
    cmd += ["--questions", str(questions)]
    cmd += ["--url", url] if url else []
    cmd += ["--ingest", str(ingest)] if ingest else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), "")
    if not line:
        raise SystemExit(f"measure failed: {out.stderr[-3000:]}")
    return dict(json.loads(line[7:]))


def du(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def server_measure(index: Path, dev_eval: Path, questions: int, log: Path) -> dict[str, Any] | None:
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = index / "index" / "chroma"
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [str(exe), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink,
            stderr=sink,
        )
    try:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        result = run_measure(index, dev_eval, questions, f"http://127.0.0.1:{port}")
        result["server_peak_mb"] = peak_mb(str(proc.pid))
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev_eval", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/work/scale-work"))
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--seed-articles", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.01, help="sigma per dimension")
    ap.add_argument("--questions", type=int, default=41)
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--remeasure", action="store_true", help="measure sizes already measured")
    ap.add_argument("--baseline", type=Path, help="an earlier run's scale-results.jsonl")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    ap.add_argument("--ingest", type=Path, help=argparse.SUPPRESS)
    ap.add_argument(
        "--fill-sentences",
        type=Path,
        metavar="FOLDER",
        help="store the sentence vectors of an index grown without them, then exit",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "scale.md")
    args = ap.parse_args()
    if args.measure:
        args.index = args.measure
        return measure(args)
    if args.fill_sentences:
        print(f"filled {fill_sentences(args.fill_sentences)} chunks")
        return None

    args.work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(16)
    seed_desk, held_out = seed(args.dev_eval, args.work, args.seed_articles)
    seed_stats = json.loads((args.work / "seed" / "complete.json").read_text())
    rows: list[dict[str, Any]] = []
    results = args.work / "scale-results.jsonl"
    done = {r["size"]: r for r in read_jsonl(results)} if results.exists() else {}
    target = args.work / "grown"
    for k, size in enumerate(int(s) for s in args.sizes.split(",")):
        if size in done and not args.remeasure:
            rows.append(done[size])
            continue
        have = count_chunks(target)
        if have > size * 1.05:
            raise SystemExit(
                f"{target} already holds {have} chunks (it only grows): measure {size} in a "
                "fresh --work folder (copy the seed/ folder into it to skip the seed ingest)"
            )
        print(f"growing to {size} chunks", flush=True)
        load_rate = grow(target, seed_desk, size, args.noise, rng)
        fill_sentences(target)
        if size in done and not load_rate:
            load_rate = done[size]["load_chunks_s"]  # not grown now: keep the build's rate
        batch = args.work / f"new-{size}.jsonl"
        write_jsonl(batch, held_out[k * 20 : (k + 1) * 20])
        row: dict[str, Any] = {"size": size, "load_chunks_s": load_rate}
        row["disk_mb"] = du(target / "index")
        row["embedded"] = run_measure(target, args.dev_eval, args.questions, ingest=batch)
        if not args.no_server:
            log = results.with_suffix(".log")
            row["server"] = server_measure(target, args.dev_eval, args.questions, log)
        rows.append(row)
        done[size] = row
        write_jsonl(results, sorted(done.values(), key=lambda r: r["size"]))
        print(json.dumps(row), flush=True)
        write_report(args, rows, seed_stats)
    seed_desk.store.close()
    write_report(args, rows, seed_stats)
    if args.work.joinpath("grown").exists() and os.environ.get("SCALE_KEEP") == "0":
        shutil.rmtree(args.work / "grown")


def count_chunks(grown: Path) -> int:
    import sqlite3

    db = grown / "index" / "newsdesk.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT max(rowid) FROM chunks_fts").fetchone()[0] or 0)


def write_report(
    args: argparse.Namespace, rows: list[dict[str, Any]], seed: dict[str, Any]
) -> None:
    ms = 1000.0
    lines = [
        "# Scale",
        "",
        f"Machine: {machine()}. Load from other jobs on the machine during the run: "
        f"{os.getloadavg()[0]:.1f} (1-minute load average at the end).",
        "",
        f"How the indexes were made: the first {seed['articles']} RealTime QA articles were "
        f"ingested by the real pipeline ({seed['chunks']} chunks, real texts and vectors). "
        "Larger indexes replicate them: each replica of an article gets a new id, an outlet "
        "drawn from the seed's outlets and a date drawn uniformly from the seed's date range "
        f"(seeded RNG); each chunk vector is the seed vector + N(0, {args.noise}²) per dimension,"
        " renormalised; chunk texts and titles are the seed's (so the keyword index holds real "
        "text with realistic term statistics). One index is grown in steps; each size is "
        "measured in a fresh process, embedded Chroma first, then a `chroma run` server on the "
        "same files. Questions: the first RealTime QA questions, one at a time, as-of their "
        "date; the first is the cold one (open time), the rest give p50/p95. Answers are "
        "extractive. Ingest rate: 20 new real articles (not in the seed) into the index of that "
        "size, embedded mode.",
        "",
        "Keyword side: the question's words rarest first while their postings fit in "
        f"{POSTINGS_BUDGET:,} rows, ranked on the FTS table alone (bot/keyword.py). Rows marked "
        "*before* are the previous code's run (its own machine load), for comparison. load: the "
        "1-minute load average when that measurement ended (2 cores: above 2, other jobs were "
        "competing for them). *old query*: the previous keyword query (every word, joined per "
        "row) timed in the same process right after the current one, on the same questions. "
        "The *before* rows' 10k peak memory (1549 MB) was the parent's ru_maxrss, wrongly "
        "inherited; peaks are now each process's own VmHWM. The *before* run's 1M measurement "
        "never ran (its bench called a Desk method since removed).",
        "",
        "| chunks | code | mode | open + first answer s | retrieval p50 / p95 ms |"
        " answer p50 / p95 ms | keyword p50 / p95 ms | dense p50 ms |"
        " peak MB answering (bot / server) | disk MB | ingest articles/s | bulk load chunks/s |"
        " load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    before = read_jsonl(args.baseline) if args.baseline and args.baseline.exists() else []
    tagged = [(r, "before") for r in before] + [(r, "now") for r in rows]
    for r, code in sorted(tagged, key=lambda x: (x[0]["size"], x[1] == "now")):
        for mode in ("embedded", "server"):
            m = r.get(mode)
            if not m:
                continue
            peak = f"{m['peak_mb']:.0f}"
            peak += f" / {m['server_peak_mb']:.0f}" if mode == "server" else ""
            kw95 = f" / {m['keyword_p95'] * ms:.0f}" if "keyword_p95" in m else ""
            if "joined_p50" in m:
                kw95 += f" (old query: {m['joined_p50'] * ms:.0f} / {m['joined_p95'] * ms:.0f})"
            load = f"{m['load']:.1f}" if "load" in m else "–"
            lines.append(
                f"| {r['size']:,} | {'**now**' if code == 'now' else '*before*'} | {mode} | "
                f"{m['first_answer_s']:.1f} | "
                f"{m['retrieval_p50'] * ms:.0f} / {m['retrieval_p95'] * ms:.0f} | "
                f"{m['answer_p50'] * ms:.0f} / {m['answer_p95'] * ms:.0f} | "
                f"{m['keyword_p50'] * ms:.0f}{kw95} | {m['dense_p50'] * ms:.0f} | {peak} | "
                f"{r['disk_mb']:.0f} | "
                + (f"{m['ingest_articles_s']:.2f}" if "ingest_articles_s" in m else "–")
                + f" | {r['load_chunks_s'] or 0:.0f} | {load} |".replace("| 0 |", "| – |")
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    plot(rows, before, args.out.with_suffix(".png"))


def plot(rows: list[dict[str, Any]], before: list[dict[str, Any]], path: Path) -> None:
    """Embedded mode (the targets' mode): now solid, the baseline run dotted, one colour a
    measure; the old keyword query timed in the same run as "keyword, old query"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    measures = [
        ("answer_p95", "answer p95", "tab:red"),
        ("answer_p50", "answer p50", "tab:orange"),
        ("retrieval_p50", "retrieval p50", "tab:blue"),
        ("keyword_p50", "keyword p50", "tab:green"),
        ("joined_p50", "keyword p50, old query", "tab:olive"),
        ("dense_p50", "vector search p50", "tab:purple"),
    ]
    for code, runs, style in (("now", rows, "-"), ("before", before, ":")):
        for key, label, colour in measures:
            pts = [(r["size"], r["embedded"][key]) for r in runs if key in r.get("embedded", {})]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] * 1000 for p in pts],
                    style,
                    marker="o",
                    color=colour,
                    label=f"{label} ({code})",
                )
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the index")
    ax.set_ylabel("ms per question")
    ax.set_title("Latency against index size, embedded Chroma, one question at a time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
