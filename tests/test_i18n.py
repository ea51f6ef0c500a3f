"""The bot speaks the journalist's language: catalogs, per-user choice, fallbacks, Telegram HTML."""

from __future__ import annotations

import asyncio
import datetime as dt
import gettext
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from botkit import JOURNALISTS, buttons, reply_to, running_bot, services_of
from conftest import MakeDesk, run_cli
from fake_telegram import ApiError, FakeTelegram, parse_html, utf16_len
from feedkit import serve
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram.ext import Application

from bot import callbacks, i18n, render, render_feeds, render_privacy
from bot.desk import Desk
from bot.errors import InputError
from bot.feeds import DAY, FeedStore
from bot.feeds_bot import POLL_JOB, poll_due
from bot.i18n import Catalogs, base_language, speaking
from bot.journalist import source_languages
from bot.models import Answer, Article, Citation
from bot.timeline import Entry
from bot.watches import Watch

ASYNC = pytest.mark.asyncio(loop_scope="session")
LOCALE = Path(i18n.__file__).with_name("locale")
ROOT = LOCALE.parents[1]
TRANSLATED = [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT]
UK, DE, FR, NONE, STRANGER = [*JOURNALISTS[30:34], 999_001]
S400 = "Why would the EU buy Russian S-400 systems from Turkey?"
UNANSWERED = "What is the best recipe for sourdough bread?"

REFUSAL = {
    "en": "The corpus does not answer this question.",
    "uk": "Архів не дає відповіді на це запитання.",
    "de": "Das Archiv beantwortet diese Frage nicht.",
}
START = {
    "en": "Newsdesk answers questions from this newsroom's own articles.",
    "uk": "Newsdesk відповідає на запитання за статтями вашої редакції.",
    "de": "Newsdesk beantwortet Fragen aus den eigenen Artikeln dieser Redaktion.",
}
HELP = {"en": "Filters (anywhere in the question)", "uk": "Фільтри (будь-де в запитанні)"}


def catalog(lang: str) -> Catalog:
    with (LOCALE / lang / "LC_MESSAGES" / "newsdesk.po").open("rb") as handle:
        return read_po(handle, locale=lang)


# -- choosing the language -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("uk", "uk"),
        ("de-AT", "de"),
        ("DE_ch", "de"),
        ("ru", "ru"),
        ("tr", "tr"),
        ("pt-br", "en"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
        ("ukr", "en"),
        ("en-GB", "en"),
    ],
)
def test_language_code_maps_to_a_supported_language(code: str | None, expected: str) -> None:
    assert base_language(code) == expected


def test_compiled_catalogs_translate_and_are_current() -> None:
    """`make install` compiled every .po; each .mo says what its .po says."""
    for lang in TRANSLATED:
        mo = LOCALE / lang / "LC_MESSAGES" / "newsdesk.mo"
        assert mo.exists(), f"{mo} is missing: run `make install` (it compiles the catalogs)"
        with speaking(lang, Catalogs(LOCALE)):
            for message in catalog(lang):
                if message.id and isinstance(message.id, str):
                    assert i18n._(message.id) == message.string, (lang, message.id)
    with speaking("uk"):
        assert i18n._(render.START).startswith("<b>Newsdesk</b> відповідає на запитання")
        assert i18n.ngettext("{n} article", "{n} articles", 3).format(n=3) == "3 статті"
        assert i18n.ngettext("{n} article", "{n} articles", 5).format(n=5) == "5 статей"
        assert i18n.ngettext("{n} article", "{n} articles", 21).format(n=21) == "21 стаття"
    with speaking("ru"):
        assert i18n.ngettext("{n} chunk", "{n} chunks", 2).format(n=2) == "2 фрагмента"
    assert i18n.language() == "en" and i18n._(render.START) == render.START  # nothing leaked


def test_missing_or_corrupt_catalogs_fall_back_to_english(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real = (LOCALE / "de" / "LC_MESSAGES" / "newsdesk.mo").read_bytes()
    for lang, data in {
        "uk": None,
        "ru": b"\x00" * 40,
        "tr": b"not a catalog",
        "de": real[:60],
    }.items():
        if data is not None:
            folder = tmp_path / lang / "LC_MESSAGES"
            folder.mkdir(parents=True)
            (folder / "newsdesk.mo").write_bytes(data)
    catalogs = Catalogs(tmp_path)
    for lang in TRANSLATED:
        with speaking(lang, catalogs) as chosen:
            assert chosen == lang
            assert i18n._(render.START) == render.START
            assert render.slow_down(3) == "Slow down: you can ask again in 3 s."
            assert i18n.ngettext("{n} chunk", "{n} chunks", 2) == "{n} chunks"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert all(f": {lang} in English" in warned for lang in TRANSLATED)
    # A folder with no catalogs at all (a fresh clone before `make install`): English too.
    with speaking("uk", Catalogs(tmp_path / "nothing")):
        assert i18n._(render.HELP) == render.HELP


# -- the catalogs ----------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\(\w+\)[sdif]|%[sdif]")
TAG = re.compile(r"</?([a-z-]+)")
SAMPLE = {
    "n": 3,
    "count": "3 articles",
    "page": 1,
    "pages": 2,
    "query": "S-400 &lt;Turkey&gt;",
    "title": "A &amp; B",
    "id": 7,
    "url": "https://example.org/a?b=1&amp;c=2",
    "date": "2025-11-20",
    "user_id": 1,
    "chat_id": -100,
    "error_id": "ab12",
}


def strings(message: Any) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple) else [message.string]


def ids(message: Any) -> list[str]:
    return list(message.id) if isinstance(message.id, tuple) else [message.id]


def test_every_message_of_the_code_is_in_every_catalog() -> None:
    """What `make messages` would extract from bot/ is translated in each language (a new
    string without a translation fails here, not in front of a journalist)."""
    keywords = {"_": None, "N_": None, "Said": None, "ngettext": (1, 2)}
    extracted = {
        (m[2] if isinstance(m[2], str) else m[2][0])
        for m in extract_from_dir(ROOT / "bot", [("**.py", "python")], keywords=keywords)
    }
    assert len(extracted) > 100
    for lang in TRANSLATED:
        cat = catalog(lang)
        translated = {ids(m)[0] for m in cat if m.id and all(strings(m)) and not m.fuzzy}
        assert extracted <= translated, (lang, sorted(extracted - translated)[:5])


@pytest.mark.parametrize("lang", TRANSLATED)
def test_translations_keep_placeholders_tags_and_plural_forms(lang: str) -> None:
    cat = catalog(lang)
    assert cat.num_plurals == (3 if lang in ("uk", "ru") else 2)
    for message in cat:
        if not message.id:
            continue
        msgids, msgstrs = ids(message), strings(message)
        if isinstance(message.id, tuple):
            assert len(msgstrs) == cat.num_plurals, message.id
        for text in msgstrs:
            assert text, f"{lang}: untranslated {msgids[0]!r}"
            assert sorted(set(PLACEHOLDER.findall(text))) == sorted(
                set(PLACEHOLDER.findall(msgids[-1]))
            ), (lang, msgids[0], text)
            assert TAG.findall(text) == TAG.findall(msgids[0]), (lang, msgids[0], text)
            # Formatted as the code formats it, it is HTML Telegram accepts.
            html_text = text.format(
                **{k: SAMPLE.get(k, "x") for k in re.findall(r"\{(\w*)\}", text)}
            )
            parse_html(html_text)
    # Babel compiles it, and gettext reads what Babel wrote.
    buffer = io.BytesIO()
    write_mo(buffer, cat)
    buffer.seek(0)
    assert gettext.GNUTranslations(buffer).gettext("Sources") != "Sources"


def test_a_broken_translation_is_caught() -> None:
    """The checks above are not vacuous: a lost placeholder or tag does not pass."""
    good = "Removed <b>{title}</b> (<code>{id}</code>)."
    for bad in (
        "Вилучено <b>{title}</b> (<code>{ID}</code>).",
        "Вилучено {title} (<code>{id}</code>).",
    ):
        same_slots = sorted(PLACEHOLDER.findall(bad)) == sorted(PLACEHOLDER.findall(good))
        same_tags = TAG.findall(bad) == TAG.findall(good)
        assert not (same_slots and same_tags)
    with pytest.raises(ApiError):
        parse_html("Вилучено <b>A</i>.")


def fits(messages: list[str]) -> None:
    for message in messages:
        text, _ = parse_html(message)
        assert 0 < utf16_len(text) <= 4096


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_long_messages_still_fit_and_buttons_keep_their_data(lang: str) -> None:
    with speaking(lang):
        fits([i18n._(render.HELP), i18n._(render.START), i18n._(render.ADD_USAGE)])
        held = {"answers": 10**6, "feedback": 10**6, "audit": 10**6, "watches": 10**6}
        for admin in (True, False):
            fits(render_privacy.privacy_html(held, 10**4, 10**4, admin, admin))
            text, keyboard = render_privacy.forget_prompt(42, admin)
            fits([text])
            assert [b.callback_data for b in keyboard.inline_keyboard[0]] == [
                callbacks.forget(42, True),
                callbacks.forget(42, False),
            ]
        keyboard = render.answer_keyboard(12345, True)
        data = [b.callback_data for b in keyboard.inline_keyboard[0]]
        assert data == [
            callbacks.quotes(12345),
            callbacks.vote(12345, 1),
            callbacks.vote(12345, -1),
        ]
        for button in keyboard.inline_keyboard[0]:
            assert len(button.text) <= 20


# -- dynamic values in translated messages stay valid Telegram HTML --------------------------

hostile = st.lists(
    st.sampled_from([*"<>&\"'{}%/ab Яїİı\n", "</b>", "<i>", "{id}", "%(x)s"]), max_size=200
).map("".join)


@settings(max_examples=60, deadline=None)
@given(
    lang=st.sampled_from(i18n.LANGUAGES),
    text=hostile,
    other=hostile,
    number=st.integers(min_value=-(10**12), max_value=10**12),
    seconds=st.floats(min_value=0, max_value=1e6),
)
def test_translated_messages_with_any_values_are_valid_html(
    lang: str, text: str, other: str, number: int, seconds: float
) -> None:
    watch = Watch(id=number, user_id=1, chat_id=2, text=text)
    entry = Entry(1, "a" * 16, other, text, dt.date(2025, 1, 2), "https://e.org/" + text, other)
    row = type("Row", (), {"id": other[:16], "title": text})()
    answer = Answer("q", "The corpus does not answer this question.", [], True)
    cite = Citation(1, "x", text, other, None, "https://e.org/", other or "q", 0, 1)
    with speaking(lang):
        fits(
            [
                render.stranger(number, number, private=False),
                render.stranger(number, number, private=True),
                render.removed(text, other),
                render.remove_prompt(row)[0],
                render.apology(text, other),
                render.ask_example(text),
                render.slow_down(seconds),
                render.failed_html(text, other),
                render.problem(text),
                render_feeds.watching(watch),
                render_feeds.unwatched(watch),
                render_feeds.digest_set(text[:5], other[:40]),
                *render.passages_html(text, []),
                *render_feeds.timeline_html(number, text, [entry], 0)[0],
                *render_feeds.timeline_html(number, text, [], 0)[0],
                *render.answer_html(answer, languages={"x": text}, reader=lang),
                *render.answer_html(
                    Answer("q", f"{other} [1]", [cite], False), languages={"x": text}, reader=lang
                ),
            ]
        )


# -- through Telegram ------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        server.languages.update({UK: "uk", DE: "de-AT", FR: "fr", NONE: None, STRANGER: "uk"})
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def app(tg: FakeTelegram, seeded: Desk) -> AsyncIterator[Application]:
    async with running_bot(tg, seeded) as application:
        yield application


@ASYNC
async def test_ukrainian_user_gets_start_help_refusal_and_buttons_in_ukrainian(
    tg: FakeTelegram, app: Application
) -> None:
    said = {}
    for text in ("/start", "/help", UNANSWERED, S400):
        said[text] = await tg.wait_for(reply_to(tg.send_text(UK, text)))
    assert said["/start"]["text"].startswith(START["uk"])
    assert HELP["uk"] in said["/help"]["text"] and "/ask" in said["/help"]["text"]
    assert said[UNANSWERED]["text"].startswith(REFUSAL["uk"])
    assert "Найближчі джерела" in said[UNANSWERED]["text"]
    answer = said[S400]
    assert "Джерела" in answer["text"] and "[1]" in answer["text"]
    assert "EU Considers Buying Russian S-400" in answer["text"]  # titles and quotes: verbatim
    assert " (EN)" not in answer["text"]  # asked in English: the sources' language
    assert set(buttons(answer)) == {"Цитати", "👍", "👎"}
    pressed = tg.press_button(UK, answer["message_id"], buttons(answer)["👍"])
    assert (await tg.wait_answered(pressed))["text"] == "Дякуємо, враховано."
    # The command menu for Ukrainian users is Ukrainian; the default one stays English.
    menu = {c.command: c.description for c in await app.bot.get_my_commands(language_code="uk")}
    assert menu["ask"] == "Поставити запитання до архіву"
    default = {c.command: c.description for c in await app.bot.get_my_commands()}
    assert default["ask"] == "Ask a question about the corpus"


@ASYNC
async def test_each_user_at_once_in_their_own_language(tg: FakeTelegram, app: Application) -> None:
    """de-AT is German, fr and no language_code are English, and concurrent users never get
    each other's language."""
    users = {UK: "uk", DE: "de", FR: "en", NONE: "en"}
    for _ in range(2):
        sent = {user: tg.send_text(user, UNANSWERED) for user in users}
        sent |= {-user: tg.send_text(user, "/start") for user in users}
        replies = await asyncio.gather(*(tg.wait_for(reply_to(m)) for m in sent.values()))
        for (user, _), reply in zip(sent.items(), replies, strict=True):
            lang = users[abs(user)]
            expected = (REFUSAL if user > 0 else START).get(lang, REFUSAL["en"])
            assert reply["text"].startswith(expected), (user, reply["text"])


@ASYNC
async def test_a_stranger_is_refused_in_their_language(tg: FakeTelegram, app: Application) -> None:
    reply = await tg.wait_for(reply_to(tg.send_text(STRANGER, "/start")))
    assert reply["text"].startswith("Вибачте, цей бот лише для редакції.")
    assert str(STRANGER) in reply["text"]


@ASYNC
async def test_watch_alerts_come_in_the_language_the_watch_was_set_in(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    """An alert answers no message of the user's: it is written in the language they had when
    they set the watch (kept in index/watches.db, and deleted by /forget)."""
    desk = make_desk()
    async with running_bot(tg, desk, inbox_interval=0.3) as app:
        svc = services_of(app)
        for user in (UK, FR):
            await tg.wait_for(reply_to(tg.send_text(user, "/watch ferry fares island commuters")))

        def upload() -> None:
            ferry = Article(
                title="Ferry fares cut for island commuters",
                text="The Port Elmsley ferry company cut fares for island commuters by a third "
                "on Monday, after a year of protests over the cost of the crossing.",
                source="Elmsley Post",
                published=dt.date(2025, 6, 2),
            )
            with desk.write_lock:
                desk.ingestor.ingest_articles([ferry])

        await asyncio.get_running_loop().run_in_executor(svc.writer, upload)
        uk = await tg.wait_for(lambda e: e["chat_id"] == UK and "🔔" in e["text"])
        fr = await tg.wait_for(lambda e: e["chat_id"] == FR and "🔔" in e["text"])
        assert uk["text"].startswith("🔔 Нове за вашим відстеженням 1")
        assert fr["text"].startswith("🔔 New for your watch 2")
        assert "Ferry fares cut for island commuters" in uk["text"]  # the title: verbatim
        assert svc.watches is not None and svc.watches.language(UK) == "uk"
        assert svc.watches.forget(UK) and svc.watches.language(UK) == ""


@ASYNC
async def test_a_failing_feed_is_told_to_each_admin_in_their_language(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    """A feed alert answers no message: each admin reads it in the language they last used
    /feeds in, the fetcher's reason included; an admin who never said gets English."""
    now = [1_000_000.0]
    desk = make_desk(fetch_allowed_networks=["127.0.0.0/8"])
    with serve() as site:
        url = site.put("/rss.xml", "oops", status=500)
        async with running_bot(tg, desk, admins=[UK, FR]) as app:
            svc = services_of(app)
            assert app.job_queue is not None  # only this test polls, on its own clock
            for job in app.job_queue.get_jobs_by_name(POLL_JOB):
                job.schedule_removal()
            svc.feeds = FeedStore(desk.settings.index_dir, clock=lambda: now[0])
            await tg.wait_for(
                reply_to(tg.send_text(FR, "/start"))
            )  # a bot may write only to users who started it
            added = await tg.wait_for(reply_to(tg.send_text(UK, f"/feeds add {url}")))
            assert added["text"].startswith("Додано стрічку 1")
            first = await poll_due(app)
            assert "HTTP 500" in first[0].error and not first[0].alert
            now[0] += DAY + 1
            start = len(tg.sent)
            assert (await poll_due(app))[0].alert
            uk = await tg.wait_for(lambda e: e["chat_id"] == UK and "⚠️" in e["text"], start=start)
            fr = await tg.wait_for(lambda e: e["chat_id"] == FR and "⚠️" in e["text"], start=start)
    assert uk["text"].startswith("⚠️ Стрічка 1") and "відповідь HTTP 500" in uk["text"]
    assert fr["text"].startswith("⚠️ Feed 1") and "answered HTTP 500" in fr["text"]


def test_a_source_in_another_language_says_which(seeded: Desk) -> None:
    """The stored language of the article (`language: en` in its front matter), not a guess."""
    rows = seeded.store.visible_articles()
    stored = seeded.store.languages([r.id for r in rows])
    row = next(r for r in rows if stored[r.id] == "en")
    cite = Citation(1, row.id, row.title, row.source, row.published, row.url, "A quote.", 0, 9)
    answer = Answer("q", "A quote. [1]", [cite], False)
    ukrainian = "Навіщо ЄС купувати С-400 у Туреччини?"
    with i18n.speaking("uk"):  # a Ukrainian reader: the English source says so
        languages, reader = source_languages(seeded, ukrainian, answer)
    assert reader == "uk" and languages == {row.id: "en"}
    shown = "\n".join(render.answer_html(answer, None, languages, reader))
    assert f"{row.title[:20]}" in shown and " (EN)" in shown
    with i18n.speaking("de"):  # a German reader asking in Ukrainian: the question tells
        assert source_languages(seeded, ukrainian, answer)[1] == "uk"
    same = "\n".join(render.answer_html(answer, None, *source_languages(seeded, S400, answer)))
    assert " (EN)" not in same


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def on_seeded(seeded: Desk, monkeypatch: pytest.MonkeyPatch) -> Desk:
    monkeypatch.setenv("NEWSDESK_CORPUS_DIR", str(seeded.settings.corpus_dir))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(seeded.settings.index_dir))
    return seeded


def test_ask_and_eval_speak_the_chosen_language(
    on_seeded: Desk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(["ask", "--lang", "uk", UNANSWERED], capsys)
    assert code == 0 and out.startswith(REFUSAL["uk"]) and "Найближчі джерела:" in out
    code, out, _ = run_cli(["ask", UNANSWERED], capsys)  # the run before did not leak
    assert code == 0 and out.startswith(REFUSAL["en"])
    code, out, _ = run_cli(["ask", "--lang", "uk", "Навіщо ЄС купувати С-400 у Туреччини?"], capsys)
    assert code == 0
    if "Джерела:" in out:  # when the English model finds it: the source says it is English
        assert " (EN)" in out
    code, _, err = run_cli(["ask", "--lang", "xx", UNANSWERED], capsys)
    assert code == 2 and "not a language of the bot" in err
    monkeypatch.setenv("NEWSDESK_LANGUAGE", "de")
    code, out, _ = run_cli(["ask", UNANSWERED, "--json"], capsys)
    assert code == 0 and json.loads(out)["answer"] == REFUSAL["de"]
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": UNANSWERED}) + "\n", encoding="utf-8")
    code, _, _ = run_cli(["eval", str(questions), "--out", str(tmp_path / "r.jsonl")], capsys)
    result = json.loads((tmp_path / "r.jsonl").read_text(encoding="utf-8"))
    assert code == 0 and result["abstained"] and result["answer"] == REFUSAL["de"]
    monkeypatch.setenv("NEWSDESK_LANGUAGE", "klingon")
    code, _, err = run_cli(["ask", UNANSWERED], capsys)
    assert code == 1 and "NEWSDESK_LANGUAGE" in err


def test_a_parser_reason_is_english_until_said_in_a_language(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reason is raised in English in a worker thread (logs, the journal and the command line
    keep that) and said in the admin's language where it is shown, its inserted parts too."""
    kind = i18n.Said("a list")
    reason = i18n.Said("{field} must be text, not {kind}", field="title", kind=kind)
    error = InputError(reason)
    assert (
        str(error)
        == f"{error}"
        == json.loads(json.dumps(str(reason)))
        == ("title must be text, not a list")
    )
    assert i18n.message_of(error) is reason and i18n.message_of(ValueError("x")) == "x"
    with speaking("uk"):
        expected = i18n._(reason.msgid).format(field="title", kind=i18n._("a list"))
        assert i18n.said(error) == i18n.said(reason) == expected
        assert "title" in expected and "a list" not in expected and "must be" not in expected
        assert i18n.said("plain text") == "plain text"
    # A translation that lost a placeholder falls back to the English, with a warning.
    cat = Catalog(locale="uk")
    cat.add(reason.msgid, "{field} має бути {wrong}")
    folder = tmp_path / "uk" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "newsdesk.mo").open("wb") as handle:
        write_mo(handle, cat)
    with speaking("uk", Catalogs(tmp_path)):
        assert i18n.said(error) == "title must be text, not a list"
    assert "does not format" in caplog.text


@ASYNC
async def test_a_ukrainian_admin_reads_why_a_file_failed_in_ukrainian(
    tg: FakeTelegram, make_desk: MakeDesk
) -> None:
    """Both ways a reason reaches an admin: a failed upload (the error handler) and a file
    parsed in the writer thread (the ingest report)."""
    desk = make_desk()
    admin = JOURNALISTS[35]
    tg.languages[admin] = "uk"
    with speaking("uk"):
        cases = {
            "empty.txt": (b"   ", i18n._("file is empty")),
            "broken.pdf": (b"%PDF-1.4 garbage", i18n._("corrupt or unreadable PDF ({error})")),
            "list.md": (
                b"---\ntitle: [a, b]\n---\nThe body of the article.",
                i18n._("{field} must be text, not {kind}").format(
                    field="title", kind=i18n._("a list")
                ),
            ),
        }
    async with running_bot(tg, desk, admins=[admin]):
        for name, (data, expected) in cases.items():
            expected = expected.split("{")[0].strip()  # the part before a class name
            assert expected and expected.isascii() is False, expected  # Ukrainian, not English
            msg = tg.send_document(admin, name, data)
            reply = await tg.wait_for(lambda e, m=msg: reply_to(m)(e) and "…" not in e["text"])
            assert expected in reply["text"], (name, reply["text"])
            assert "Traceback" not in reply["text"]
    assert desk.store.articles() == []
