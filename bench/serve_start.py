"""A bot's start-up: launch `newsdesk serve` -> its first answer, through the fake Telegram server.

    .venv/bin/python bench/serve_start.py ROOT [--runs 3] [--question "..."]

ROOT holds corpus/ and a built index/ (e.g. a bench/scale.py work folder's seed/). Each run
starts a fresh FakeTelegram (tests/fake_telegram.py, 127.0.0.1), queues one private question
from an allowed user BEFORE launching the bot (so the bot finds it on its first poll), launches
`python -m bot serve` as a new process, and times launch -> the bot's first message to the
chat, and launch -> the message that holds the answer (a citation or the refusal). Medians
over the runs; the machine's load average is printed with them. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))
sys.path.insert(0, str(ROOT.parent))

from fake_telegram import FakeTelegram  # noqa: E402

from bot.answer import ABSTAIN_TEXT  # noqa: E402

USER = 4242


def answered(entry: dict[str, Any]) -> bool:
    text = str(entry.get("text") or "")
    return entry["chat_id"] == USER and ("[1]" in text or ABSTAIN_TEXT in text)


async def one_run(root: Path, question: str, timeout: float) -> dict[str, float]:
    async with FakeTelegram() as tg:
        tg.send_text(USER, question)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
        env |= {
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "NEWSDESK_CORPUS_DIR": str(root / "corpus"),
            "NEWSDESK_INDEX_DIR": str(root / "index"),
            "NEWSDESK_TELEGRAM_TOKEN": tg.token,
            "NEWSDESK_TELEGRAM_API_URL": tg.url,
            "NEWSDESK_ALLOWED_USERS": str(USER),
            "NEWSDESK_HEALTH_PORT": "0",
        }
        launched = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            cwd=root,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await tg.wait_for(lambda e: e["chat_id"] == USER, timeout)
            first = time.perf_counter() - launched
            await tg.wait_for(answered, timeout)
            answer = time.perf_counter() - launched
        finally:
            proc.terminate()
            _, err = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode not in (0, -15):
            print(err.decode()[-2000:], file=sys.stderr)
        return {"first_message_s": first, "answer_s": answer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a folder with corpus/ and index/")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--question", default="How much did Turkey pay for the S-400?")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    runs = [
        asyncio.run(one_run(args.root.resolve(), args.question, args.timeout))
        for _ in range(args.runs)
    ]
    result = {
        key: statistics.median(r[key] for r in runs) for key in ("first_message_s", "answer_s")
    }
    result |= {"runs": runs, "load": os.getloadavg()[0]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
