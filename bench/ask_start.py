"""A cold `newsdesk ask`, A/B: this tree against another checkout, runs interleaved.

    .venv/bin/python bench/ask_start.py ROOT --base /path/to/other/checkout [--runs 5]

ROOT holds corpus/ and a built index/. Each run is a new process (`python -m bot ask ...`) under
`/usr/bin/time -v`, with PYTHONPATH set to this tree, then to the base tree, alternating, so
both see the same machine load. Reported per tree: median wall time, user + system CPU time and
peak resident memory, and the ratio of this tree's medians to the base's. CPU time is the
steadier figure on a shared machine: contention stretches wall time, not the work done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
FIELDS = {
    "wall_s": re.compile(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+(?:\.\d+)?)$"),
    "user_s": re.compile(r"User time \(seconds\): ([\d.]+)"),
    "sys_s": re.compile(r"System time \(seconds\): ([\d.]+)"),
    "peak_mib": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
}


def one_run(tree: Path, root: Path, question: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    env |= {
        "PYTHONPATH": str(tree),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NEWSDESK_CORPUS_DIR": str(root / "corpus"),
        "NEWSDESK_INDEX_DIR": str(root / "index"),
    }
    with tempfile.NamedTemporaryFile("r") as report:
        cmd = ["/usr/bin/time", "-v", "-o", report.name, sys.executable, "-m", "bot", "ask"]
        done = subprocess.run(
            [*cmd, question], cwd=root, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode:
            raise SystemExit(f"{tree}: ask failed ({done.returncode}): {done.stderr[-2000:]}")
        text = report.read()
    got: dict[str, float] = {}
    for line in text.splitlines():
        for key, pattern in FIELDS.items():
            if m := pattern.search(line.strip()):
                if key == "wall_s":
                    got[key] = float(m.group(1) or 0) * 60 + float(m.group(2))
                elif key == "peak_mib":
                    got[key] = int(m.group(1)) / 1024
                else:
                    got[key] = float(m.group(1))
    got["cpu_s"] = got.pop("user_s") + got.pop("sys_s")
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a folder with corpus/ and index/")
    ap.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--question", default="How much did Turkey pay for the S-400?")
    args = ap.parse_args()
    trees = {"this": HERE, "base": args.base.resolve()}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    one_run(HERE, args.root.resolve(), args.question)  # warm the page cache; not counted
    for _ in range(args.runs):
        for name, tree in trees.items():
            runs[name].append(one_run(tree, args.root.resolve(), args.question))
    medians = {
        name: {key: round(statistics.median(r[key] for r in rs), 3) for key in rs[0]}
        for name, rs in runs.items()
    }
    ratios = {key: round(medians["this"][key] / medians["base"][key], 3) for key in medians["this"]}
    result = {
        "medians": medians,
        "this/base": ratios,
        "runs": runs,
        "load": os.getloadavg(),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
