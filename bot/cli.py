"""The `newsdesk` command: every path through the pipeline, from a terminal."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from bot import feeds_cli, i18n, journal_cli, reads
from bot.config import Settings, settings_problem
from bot.desk import Desk
from bot.errors import NewsdeskError, storage_problem
from bot.models import Filters

if TYPE_CHECKING:  # the writers' modules load with the writers: a question needs none of them
    from bot.handoff import Outcome
    from bot.lock import Holder

app = typer.Typer(
    help="Newsdesk: cited answers from your newsroom's articles.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(journal_cli.app, name="journal")
app.add_typer(feeds_cli.app, name="feeds")
log = logging.getLogger("bot")

Since = Annotated[str | None, typer.Option(help="Only articles published on or after YYYY-MM-DD.")]
Until = Annotated[str | None, typer.Option(help="Only articles published on or before YYYY-MM-DD.")]
Outlet = Annotated[str | None, typer.Option("--source", help="Only articles from this outlet.")]
AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="Answer as of this date: prefer news just before it (ask: today)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Lang = Annotated[
    str | None,
    typer.Option(
        "--lang",
        help="Language of the fixed texts (refusal, notes, headings): en, uk, ru, tr or de "
        "(default: NEWSDESK_LANGUAGE, else en). Quotes stay in the article's language.",
    ),
]


def _desk() -> Desk:
    return Desk(Settings())


def _date(value: str | None, option: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date: use YYYY-MM-DD", param_hint=option
        ) from None


def _filters(
    since: str | None, until: str | None, source: str | None, as_of: str | None
) -> Filters:
    return Filters(
        since=_date(since, "--since"),
        until=_date(until, "--until"),
        source=source or "",
        as_of=_date(as_of, "--as-of"),
    )


def _speak(desk: Desk, lang: str | None) -> None:
    """The fixed texts of this run in --lang, else NEWSDESK_LANGUAGE."""
    try:
        i18n.use(i18n.supported(lang) if lang else desk.settings.language)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lang") from None


def _say(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _reader(desk: Desk, command: str) -> Iterator[Holder | None]:
    """For a question: the embedded store is opened by one process at a time (bot/reads.py),
    so wait for a command-line writer, or yield the running bot to ask instead. A Chroma server
    serves any number of processes: no lock."""
    if desk.settings.chroma_url:
        yield None
        return
    with _writer(desk, command) as bot:
        yield bot


def _question(desk: Desk, note: dict[str, Any]) -> None:
    """`ask`, `search` or `timeline` (bot/reads.py): here, or asked of the running bot."""
    with _reader(desk, note["command"]) as bot:
        if bot:
            from bot.handoff import hand_off

            outcome = hand_off(desk, bot, note, _say)
            if outcome is None:  # still loading its model and index, or stuck (see its log)
                raise NewsdeskError(
                    f"no answer from {bot} within {desk.settings.lock_timeout:g} s (still "
                    "starting up?): ask again later, or in Telegram"
                )
            return _finish(outcome)
        reads.require_index(desk)
        typer.echo(reads.run(desk, note))


@contextmanager
def _writer(desk: Desk, command: str) -> Iterator[Holder | None]:
    """Hold index/'s writer lock for the command; or yield the running bot to hand over to."""
    bot = desk.index_lock.acquire(command, desk.settings.lock_timeout, _say, defer_to_bot=True)
    try:
        yield bot
    finally:
        desk.index_lock.release()


def _finish(outcome: Outcome | None) -> None:
    if outcome is None:
        typer.echo("the bot has not finished yet; it goes on (see its log)", err=True)
        return
    for line, to_stderr in outcome.lines:
        typer.echo(line, err=to_stderr)
    if outcome.code:
        raise typer.Exit(outcome.code)


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, folders or http(s) URLs.")],
) -> None:
    """Add articles: .md .txt .html .pdf .docx .jsonl files, folders of them, or URLs."""
    from bot.handoff import hand_off, report_outcome

    desk = _desk()
    with _writer(desk, "ingest") as bot:
        if bot:
            note = {"command": "ingest", "items": list(paths)}
            return _finish(hand_off(desk, bot, note, _say))
        bar = sys.stderr.isatty()
        # Finishing an interrupted ingest (or a first run over corpus/) is part of this run.
        report = desk.ingestor.repair(bar=bar)
        report.merge(desk.ingestor.ingest(paths, bar=bar))
    _finish(report_outcome(report))


@app.command()
def reindex() -> None:
    """Re-embed every corpus/ file into index/ (old chunks stay until replaced)."""
    from bot.handoff import hand_off, report_outcome

    desk = _desk()
    with _writer(desk, "reindex") as bot:
        if bot:
            return _finish(hand_off(desk, bot, {"command": "reindex"}, _say))
        report = desk.ingestor.reindex(bar=sys.stderr.isatty())
    _finish(report_outcome(report))


@app.command()
def repair(
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Drop index entries whose file is gone, even most or all of them."
        ),
    ] = False,
) -> None:
    """Make index/ agree with corpus/: finish interrupted work, re-embed missing vectors."""
    from bot.handoff import hand_off, report_outcome

    desk = _desk()
    with _writer(desk, "repair") as bot:
        if bot:
            return _finish(hand_off(desk, bot, {"command": "repair", "prune": prune}, _say))
        report = desk.ingestor.repair(bar=sys.stderr.isatty(), prune=prune)
    _finish(report_outcome(report))


@app.command()
def docs(as_json: AsJson = False) -> None:
    """List the articles: id, date, language, outlet, chunks, title (newest first)."""
    rows = _desk().store.visible_articles()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "title": r.title,
                        "source": r.source,
                        "url": r.url,
                        "chunks": r.n_chunks,
                        "published": r.published.isoformat() if r.published else None,
                        "language": r.language,
                        "path": r.path,
                    }
                    for r in rows
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    for r in rows:
        day = r.published.isoformat() if r.published else "undated   "
        language, source = r.language or "--", r.source[:14]
        typer.echo(
            f"{r.id}  {day}  {language:3}  {source:14}  {r.n_chunks:3} chunks  {r.title[:70]}"
        )
    typer.echo(f"{len(rows)} articles")


@app.command()
def remove(
    article_id: Annotated[str, typer.Argument(help="Article id (or a unique prefix).")],
) -> None:
    """Delete an article from corpus/ and the index."""
    from bot.handoff import hand_off

    desk = _desk()
    with _writer(desk, "remove") as bot:
        if bot:
            return _finish(hand_off(desk, bot, {"command": "remove", "id": article_id}, _say))
        article = desk.ingestor.remove(article_id)
    typer.echo(f"removed {article.id}  {article.title}")


@app.command()
def stats(as_json: AsJson = False) -> None:
    """Articles, chunks, outlets, date range, index size, last ingest, and the journal."""
    desk = _desk()
    data = {**desk.store.stats(), **journal_cli.summary(desk.settings)}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key in ("index_bytes", "journal_bytes"):
            value = f"{value / 1e6:.1f} MB"
        elif key == "journal_rows":
            value = ", ".join(f"{n} {table}" for table, n in value.items()) or "-"
        typer.echo(f"{key.replace('_', ' '):16} {value if value is not None else '-'}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    since: Since = None,
    until: Until = None,
    source: Outlet = None,
    as_of: AsOf = None,
    as_json: AsJson = False,
    lang: Lang = None,
) -> None:
    """Answer a question from the corpus, with cited quotes."""
    filters = _filters(since, until, source, as_of)
    desk = _desk()
    _speak(desk, lang)
    _question(desk, reads.note("ask", filters, lang, question=question, json=as_json))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many passages.")] = 8,
    since: Since = None,
    until: Until = None,
    source: Outlet = None,
    as_of: AsOf = None,
    as_json: AsJson = False,
) -> None:
    """Show the top passages with their scores (no composed answer)."""
    filters = _filters(since, until, source, as_of)
    _question(_desk(), reads.note("search", filters, None, query=query, k=k, json=as_json))


@app.command()
def timeline(
    query: Annotated[str, typer.Argument(help="The story, in quotes.")],
    since: Since = None,
    until: Until = None,
    source: Outlet = None,
    as_json: AsJson = False,
) -> None:
    """The story in time order: one entry per article (date, outlet, its best sentence)."""
    filters = _filters(since, until, source, None)
    _question(_desk(), reads.note("timeline", filters, None, query=query, json=as_json))


@app.command("eval")
def evaluate(
    questions: Annotated[Path, typer.Argument(help='JSONL: {"id", "question", "date"?} per line.')],
    out: Annotated[Path, typer.Option("--out", help="Where to write the results (JSONL).")],
    lang: Lang = None,
) -> None:
    """Answer a file of questions in one process; write one JSON result per line."""
    from tqdm import tqdm

    try:
        lines = [
            json.loads(x) for x in questions.read_text(encoding="utf-8").splitlines() if x.strip()
        ]
    except (OSError, json.JSONDecodeError) as exc:
        raise NewsdeskError(f"cannot read {questions}: {exc}") from exc
    desk = _desk()
    _speak(desk, lang)
    latencies: list[float] = []
    abstained = 0
    with _reader(desk, "eval") as bot:
        if bot:  # a file of questions is a batch job: not one for the bot serving newsrooms
            raise NewsdeskError(
                f"the embedded vector store in {desk.settings.index_dir} is open in {bot}, and "
                "it serves one process at a time: run `newsdesk eval` while the bot is stopped, "
                "or serve the index from a Chroma server (NEWSDESK_CHROMA_URL)"
            )
        reads.require_index(desk)
        with out.open("w", encoding="utf-8") as handle:
            for item in tqdm(lines, unit=" questions", disable=not sys.stderr.isatty()):
                result = eval_one(desk, item)
                latencies.append(result["latency_ms"])
                abstained += result["abstained"]
                handle.write(json.dumps(result, ensure_ascii=False) + "\n")
    n = len(latencies)
    if n:
        p95 = sorted(latencies)[max(0, round(0.95 * n) - 1)]
        typer.echo(
            f"{n} questions: {n - abstained} answered, {abstained} abstained; latency p50 "
            f"{statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms -> {out}"
        )


def eval_one(desk: Desk, item: dict[str, Any]) -> dict[str, Any]:
    """One line of `newsdesk eval` output (the contract documented in README.md)."""
    as_of = (
        dt.date.fromisoformat(str(item["date"])[:10].replace("/", "-"))
        if item.get("date")
        else None
    )
    started = time.perf_counter()
    answer = desk.ask(str(item["question"]), Filters(as_of=as_of))
    latency = (time.perf_counter() - started) * 1000
    return {
        "id": item.get("id"),
        "abstained": answer.abstained,
        "answer": i18n._(answer.text) if answer.abstained else answer.text,
        "citations": [
            {"n": c.n, "article_id": c.article_id, "url": c.url, "title": c.title, "quote": c.quote}
            for c in answer.citations
        ],
        "latency_ms": round(latency, 1),
    }


@app.command()
def serve(
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Public HTTPS URL Telegram posts updates to (webhook mode; default: "
            "NEWSDESK_WEBHOOK_URL, else long polling).",
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT the webhook server binds (default: NEWSDESK_WEBHOOK_LISTEN, else "
            "127.0.0.1:8443, behind your TLS proxy).",
            show_default=False,
        ),
    ] = None,
    secret_token: Annotated[
        str | None,
        typer.Option(
            help="Telegram sends it with every update; other requests get 403 (default: "
            "NEWSDESK_WEBHOOK_SECRET, else a random one at each start).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the Telegram bot: long polling, or a webhook with --webhook-url."""
    from pydantic import SecretStr

    from bot.app import serve as run_bot

    logging.getLogger().setLevel(logging.INFO)
    given = {"webhook_url": webhook_url, "webhook_listen": listen}
    update: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if secret_token is not None:
        update["webhook_secret"] = SecretStr(secret_token)
    settings = Settings().model_copy(update=update)
    if (listen is not None or secret_token is not None) and not settings.webhook_url:
        raise NewsdeskError("--listen and --secret-token are for webhook mode: add --webhook-url")
    run_bot(settings)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_no_operator_tracebacks)
    try:
        # In a context of its own: --lang chooses this run's language, never the caller's
        # (tests and embedders call main() in their own process).
        contextvars.copy_context().run(app, args=argv)
    except NewsdeskError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except ValidationError as exc:  # a bad NEWSDESK_* variable
        typer.echo(f"error: {settings_problem(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:
        if problem := _operator_problem(exc):
            typer.echo(f"error: {problem}", err=True)
            sys.exit(1)
        log.exception("unexpected error (a bug: please report it with this trace)")
        sys.exit(70)


def _operator_problem(exc: BaseException) -> str:
    """Errors of the machine, not of the program: a full disk, a read-only volume, a token."""
    kind = type(exc).__name__  # telegram.error's classes: imported only by `serve`
    if kind == "InvalidToken":
        return (
            "Telegram rejected the bot token: check NEWSDESK_TELEGRAM_TOKEN against the token "
            "@BotFather gave you"
        )
    if kind in {"NetworkError", "TimedOut"} and type(exc).__module__ == "telegram.error":
        return (
            f"cannot reach the Telegram Bot API ({exc}): check the network and "
            "NEWSDESK_TELEGRAM_API_URL"
        )
    settings = Settings()
    if problem := storage_problem(exc):
        return (
            f"cannot write the index or the corpus ({settings.index_dir}, {settings.corpus_dir}):"
            f" {problem}. Nothing was lost: free space or make the folder writable, then run the"
            " same command again"
        )
    return ""


def _no_operator_tracebacks(record: logging.LogRecord) -> bool:
    """python-telegram-bot logs a rejected token with a traceback before raising it: the
    one-line error printed by main() says it all."""
    error = record.exc_info[1] if record.exc_info else None
    if error is not None:
        return not (type(error).__module__ == "telegram.error" and _operator_problem(error))
    # A traceback already redacted of the token (bot.app.protect_logs) is kept as text.
    last = (record.exc_text or "").rstrip().rpartition("\n")[2]
    return not last.startswith(("telegram.error.InvalidToken", "telegram.error.NetworkError"))
