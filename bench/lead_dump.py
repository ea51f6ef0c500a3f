"""Dumps, per dev-set question, what the composer sees: the reranked passages, their sentences
and the sentences' vectors, so that sentence scorers and abstention rules can be compared
offline in seconds (bench/lead_fit.py). The dump is a pickle under --work (never in the repo).

    .venv/bin/python bench/lead_dump.py ../shared/dev-eval --index INDEX --work DIR
    (INDEX: an ingested bench/work/ours-* folder; or --sample N to ingest a sample)
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import gold_ids, parse_day
from quality import arguments, load, open_desk, split_of

from bot.answer import split_sentences
from bot.pipeline import Request


def dump_path(args: Any) -> Path:
    return Path(args.work) / f"lead-dump-{args.sample or 'index'}.pkl"


def dump(desk: Any, questions: list[dict[str, Any]], doc_ids: set[str]) -> list[dict[str, Any]]:
    out = []
    started = time.perf_counter()
    for i, q in enumerate(questions):
        as_of = parse_day(q["question_date"])
        assert as_of is not None
        evidence = desk.pipeline.evidence.invoke(Request(q["question"], as_of))
        sentences = [s for p in evidence.passages for s in split_sentences(p)]
        texts = sorted({s.text for s in sentences})
        vectors = desk.embedder.encode(texts) if texts else np.zeros((0, 1))
        out.append(
            {
                "question": q["question"],
                "answers": q["answers"],
                "support": q["support"],
                "split": split_of(q),
                "week": q["question_date"],  # one quiz a week: the unit left out in bench/*_fit
                "as_of": as_of,
                "gold": gold_ids(q, doc_ids),
                "vector": evidence.vector,
                "passages": evidence.passages,
                "refused_before": desk.pipeline.refusal(evidence) is not None,
                "vectors": {t: v for t, v in zip(texts, vectors, strict=True)},
            }
        )
        if i % 25 == 0:
            print(f"{i}/{len(questions)} {time.perf_counter() - started:.0f}s", flush=True)
    return out


def main() -> None:
    args = arguments().parse_args()
    corpus, _, questions, doc_ids = load(args)
    desk = open_desk(args, corpus)
    rows = dump(desk, questions, doc_ids)
    dump_path(args).write_bytes(pickle.dumps(rows))
    print(f"{len(rows)} questions -> {dump_path(args)}")


if __name__ == "__main__":
    main()
