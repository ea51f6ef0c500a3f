"""The rerank stage: identity, features, a cross-encoder from a local folder; duplicates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import run_cli, settings_for
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.answer import answers_type, question_type
from bot.desk import Desk
from bot.embed import Embedder
from bot.errors import NewsdeskError
from bot.models import Chunk, Passage
from bot.rerank import (
    CrossEncoderReranker,
    FeatureReranker,
    IdentityReranker,
    collapse_duplicates,
)

STORY = (
    "The harbour board approved a 400-metre breakwater on Tuesday after two years of "
    "debate, and work will start in the spring, the board's chair said."
)


def passage(aid: str, text: str, title: str = "", published: dt.date | None = None, **kw: float):
    chunk = Chunk(f"{aid}:0", aid, 0, 0, len(text), text)
    return Passage(chunk, title or aid, "Outlet", published, "", **kw)


def test_identity_keeps_retrievals_order() -> None:
    ps = [passage("a", "one"), passage("b", "two")]
    assert IdentityReranker().rerank("q", ps, None) == ps


def test_features_prefer_the_article_that_names_the_question() -> None:
    """Equal retrieval scores: the passage naming the question's names and numbers wins."""
    vague = passage("a", "Officials met again to talk about the coast.", score=0.03, dense=0.5)
    named = passage("b", STORY, title="Breakwater approved", score=0.03, dense=0.5)
    ranked = FeatureReranker().rerank("How long is the breakwater?", [vague, named], None)
    assert [p.article_id for p in ranked] == ["b", "a"]


def test_features_prefer_news_from_just_before_the_as_of_date() -> None:
    as_of = dt.date(2024, 5, 10)
    old = passage("old", STORY, published=dt.date(2021, 1, 1), score=0.03, dense=0.5)
    new = passage("new", STORY + " ", published=dt.date(2024, 5, 8), score=0.03, dense=0.5)
    assert FeatureReranker().rerank("breakwater", [old, new], as_of)[0].article_id == "new"


@pytest.mark.parametrize(
    "title",
    ["5 things to know for May 10: Breakwater, budget", "Harbour live updates", "Daily briefing"],
)
def test_the_storys_own_article_leads_over_a_roundup(title: str) -> None:
    """A roundup tells every story of the day in a line: the story's own article is cited
    first even when retrieval scored the roundup a little higher."""
    roundup = passage("roundup", STORY, title=title, score=0.033, dense=0.55)
    own = passage("own", STORY + " ", title="Harbour board votes", score=0.03, dense=0.5)
    ranked = FeatureReranker().rerank("Who approved the breakwater?", [roundup, own], None)
    assert [p.article_id for p in ranked] == ["own", "roundup"]


def test_near_duplicate_articles_collapse_to_the_earliest() -> None:
    first = passage("wire", STORY, published=dt.date(2024, 5, 1), score=0.02)
    copy = passage("copy", STORY + " Copyright 2024.", published=dt.date(2024, 5, 2), score=0.03)
    other = passage("other", "A different story about the city's budget vote.", score=0.01)
    kept = collapse_duplicates([copy, other, first])
    assert [p.article_id for p in kept] == ["wire", "other"]
    assert kept[0].score == 0.03  # the earliest report takes the better copy's place


def tiny_cross_encoder(folder: Path, embedder: Embedder) -> Path:
    """A randomly initialised, 2-layer BERT cross-encoder saved the way sentence-transformers
    saves one (no download: the tokenizer is the bundled embedding model's)."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from bot.embed import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    raw = folder / "raw"
    BertForSequenceClassification(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    model = CrossEncoder(str(raw), local_files_only=True)
    model.save(str(folder / "ce"))
    return folder / "ce"


def test_cross_encoder_from_a_local_folder_reranks(tmp_path: Path, embedder: Embedder) -> None:
    reranker = CrossEncoderReranker(tiny_cross_encoder(tmp_path, embedder))
    ps = [passage(str(i), f"{STORY} {i}") for i in range(5)]
    ranked = reranker.rerank("How long is the breakwater?", ps, None)
    assert sorted(p.article_id for p in ranked) == [p.article_id for p in ps]
    scores = reranker.model.predict(
        [("How long is the breakwater?", f"{p.title}\n{p.chunk.text}") for p in ranked]
    )
    assert list(scores) == sorted(scores, reverse=True)


def test_a_folder_that_is_no_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    with pytest.raises(NewsdeskError, match="cannot load rerank model"):
        CrossEncoderReranker(tmp_path / "junk")


def test_the_cross_encoder_needs_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing path is a one-line settings error (exit 1), never a download attempt."""
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("NEWSDESK_RERANKER", "cross-encoder")
    monkeypatch.setenv("NEWSDESK_RERANK_MODEL", "cross-encoder/ms-marco-MiniLM-L6-v2")
    code, _, err = run_cli(["ask", "Who won?"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "NEWSDESK_RERANK_MODEL" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("NEWSDESK_RERANKER", "magic")
    code, _, err = run_cli(["ask", "Who won?"], capsys)
    assert code == 1 and "NEWSDESK_RERANKER" in err


def test_every_reranker_answers_through_the_pipeline(
    seeded: Desk, tmp_path: Path, embedder: Embedder
) -> None:
    folder = tiny_cross_encoder(tmp_path, embedder)
    question = "Why would the EU buy Russian S-400 systems from Turkey?"
    for kind in ("identity", "features", "cross-encoder"):
        root = seeded.settings.corpus_dir.parent
        desk = Desk(settings_for(root, reranker=kind, rerank_model=folder), embedder=embedder)
        answer = desk.ask(question)
        assert desk.reranker.name == kind
        assert answer.passages and len(answer.passages) <= desk.settings.top_k


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_question_typing_and_features_take_any_text(question: str, text: str) -> None:
    kind = question_type(question)
    assert kind in ("entity", "when", "where", "number", "why", "outcome", "other")
    assert isinstance(answers_type(kind, question, text), bool)
    ps = [passage("a", text or "x", published=dt.date(2024, 1, 1)), passage("b", text or "y")]
    ranked = FeatureReranker().rerank(question, ps, dt.date(2024, 1, 2))
    assert sorted(p.article_id for p in ranked) == ["a", "b"]
    assert 1 <= len(collapse_duplicates(ps)) <= 2
