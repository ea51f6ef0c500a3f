"""A sentence-transformers model run by ONNX Runtime: no torch at query time.

The model is exported from its torch weights once (this needs torch and the `onnx` package),
checked against the torch encoder on probe sentences, and cached; every later process loads the
cached file with onnxruntime and the `tokenizers` library, which start in a fraction of the time
and memory torch and sentence-transformers take.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import NewsdeskError
from bot.onnx_session import open_session

log = logging.getLogger(__name__)

# Bump when the export below changes: a file exported before is then made again.
EXPORT_VERSION = 1
# Vectors closer than this to the torch encoder's count as the same model (see README).
MIN_COSINE = 0.99
# An export (~87 MB, and its optimized copy as much again) that no start has opened for this
# long is removed when a new one is written: a package upgrade changes the cache key.
UNUSED_DAYS = 30
# Sentence vectors kept between questions: the sentences of popular stories come back in answer
# after answer (20,000 x 384 float32 = 30 MB).
CACHED_TEXTS = 20_000
PROBES = [
    "The central bank raised interest rates by a quarter point on Thursday.",
    "Wildfires forced thousands to evacuate as crews fought the blaze overnight.",
    "Who won the election for mayor?",
    "Der Bundestag hat das Gesetz am Freitag beschlossen.",
    "Short.",
]


class NotExportable(NewsdeskError):
    """The model cannot run under ONNX Runtime here (structure, or a missing package)."""


def model_files(path: Path) -> dict[str, Any]:
    """The parts of a sentence-transformers folder the ONNX encoder needs; NotExportable when
    the model does more than transformer + mean/CLS pooling (+ normalize)."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_dir = next(path / m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((pooling_dir / "config.json").read_text())
        config = json.loads((path / "config.json").read_text())
        tokenizer = path / "tokenizer.json"
        max_tokens = 512
        if (path / "sentence_bert_config.json").exists():
            sbert = json.loads((path / "sentence_bert_config.json").read_text())
            max_tokens = int(sbert.get("max_seq_length") or max_tokens)
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise NotExportable(f"{path} is not a sentence-transformers folder ({exc!r})") from exc
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise NotExportable(f"modules {kinds} are not transformer + pooling")
    mode = "mean" if pooling.get("pooling_mode_mean_tokens") else ""
    mode = mode or ("cls" if pooling.get("pooling_mode_cls_token") else "")
    if not mode or not tokenizer.exists():
        raise NotExportable("only mean or CLS pooling with a tokenizer.json is exported")
    return {
        "pooling": mode,
        "dimension": int(config["hidden_size"]),
        "max_tokens": min(max_tokens, int(config.get("max_position_embeddings", max_tokens))),
        "tokenizer": tokenizer,
    }


def cache_key(path: Path) -> str:
    """Changes whenever the weights, the config or the exporter change."""
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for f in sorted(path.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(path)}\0{st.st_size}\0{int(st.st_mtime)}\0".encode())
    return h.hexdigest()[:16]


def exported(path: Path, cache_dir: Path) -> Path:
    """The cached ONNX file of the model at `path`, exporting it first if need be.

    Two processes starting at once export once: the second waits on the lock and finds the
    file; a kill mid-export leaves only a temporary file, never a half-written model.
    """
    target = cache_dir / f"{path.name}-{cache_key(path)}.onnx"
    if target.exists():
        with contextlib.suppress(OSError):  # in use (a read-only cache is never pruned either)
            os.utime(target)
        return target
    from filelock import FileLock

    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=600):
        if not target.exists():
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            try:
                export(path, partial)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            _remove_unused(cache_dir, target)
    return target


def _remove_unused(cache_dir: Path, kept: Path) -> None:
    """Exports no start has opened for UNUSED_DAYS, with their optimized copies. A process
    still running on one keeps its open session and exports again at its next start."""
    cutoff = time.time() - UNUSED_DAYS * 86400
    for old in cache_dir.glob("*.onnx"):
        try:
            if old == kept or old.stat().st_mtime > cutoff:
                continue
            old.unlink()
        except OSError:
            continue
        log.info("removed %s: not used for %d days", old, UNUSED_DAYS)
        for leftover in cache_dir.glob(glob.escape(old.stem) + ".*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def export(path: Path, target: Path) -> None:
    """Trace the model's transformer to ONNX; refuse a file whose vectors differ from torch's."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it; say so before tracing)
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise NotExportable(f"exporting to ONNX needs {exc.name}") from exc
    log.info("exporting %s to ONNX (once; cached in %s)", path, target.parent)
    model = SentenceTransformer(str(path), device="cpu")
    with warnings.catch_warnings():  # the tracer's notes on shapes are about other models
        warnings.simplefilter("ignore")
        _export(model, target)
    reference = model.encode(PROBES, normalize_embeddings=True, convert_to_numpy=True)
    got = OnnxEmbedder(path, target, optimize=False).encode_passages(PROBES)
    worst = float(np.min(np.sum(reference * got, axis=1)))
    if worst < MIN_COSINE:
        raise NotExportable(f"ONNX vectors differ from torch's (cosine {worst:.4f})")


def _export(model: Any, target: Path) -> None:
    import torch

    transformer = model[0].auto_model.eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            out = self.inner(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return out.last_hidden_state

    batch = model.tokenizer(PROBES[:2], padding=True, return_tensors="pt")
    axes = {"b": 0, "s": 1}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(
            Hidden(),
            (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]),
            str(target),
            input_names=names,
            output_names=["hidden"],
            dynamic_axes={n: {v: k for k, v in axes.items()} for n in [*names, "hidden"]},
            opset_version=17,
            dynamo=False,
        )


class OnnxEmbedder:
    """The `Embedder` protocol on ONNX Runtime; vectors are unit length (cosine = dot).

    With `optimize`, the session opens the graph-optimized copy of `onnx_file` (made on first
    use: bot/onnx_session.py).
    """

    backend = "onnx"
    dtype = "float32"

    def __init__(
        self,
        path: Path,
        onnx_file: Path,
        name: str = "",
        batch_size: int = 32,
        optimize: bool = True,
    ) -> None:
        from tokenizers import Tokenizer

        files = model_files(path)
        self.name = name or path.name
        self.dimension: int = files["dimension"]
        self.max_tokens: int = files["max_tokens"]
        self.batch_size = batch_size
        self._pooling = files["pooling"]
        # Two tokenizers: one counts whole texts, one truncates and pads batches for the model.
        self.tokenizer = Tokenizer.from_file(str(files["tokenizer"]))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self._batcher = Tokenizer.from_file(str(files["tokenizer"]))
        self._batcher.enable_truncation(self.max_tokens)
        self._batcher.enable_padding()
        self._session = open_session(onnx_file, optimize)
        self._lock = threading.Lock()
        self.batcher = MicroBatcher(self._encode_now)
        self.cache = VectorCache(CACHED_TEXTS)

    def count_tokens(self, text: str) -> int:
        """Word pieces without the special tokens the model adds around every input."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Questions and answer sentences: cached, and batched with other callers'."""
        if len(texts) >= MicroBatcher.MAX_TEXTS:  # ingest-sized: neither cache nor batch
            return self._encode_now(texts)
        known = self.cache.get_many(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = self.batcher.encode(missing)
            known.update(zip(missing, fresh, strict=True))
            self.cache.put_many(missing, fresh)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack([known[t] for t in texts])

    def _encode_now(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Sorted by length so a batch pads to similar lengths; put back in order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for at in range(0, len(order), self.batch_size):
            chunk = order[at : at + self.batch_size]
            out[chunk] = self._run([texts[i] for i in chunk])
        return out

    def _run(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            encodings = self._batcher.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, feed)[0]
        if self._pooling == "cls":
            vectors = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            vectors = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        vectors = vectors.astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class MicroBatcher:
    """Concurrent encode calls share model runs: while one run is busy, the texts of every
    caller that arrives queue up, and the next free caller encodes them all at once.

    50 journalists asking at once cost a few batched runs instead of 50 single ones; a lone
    question never waits for company (no timer), and each caller gets exactly its own rows.
    """

    MAX_TEXTS = 256  # one run at most; larger calls (ingest) go alone

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray]) -> None:
        self._encode = encode
        self._ready = threading.Condition()
        self._queue: list[_Request] = []
        self._busy = False
        self.calls = 0
        self.runs = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) >= self.MAX_TEXTS:
            return self._encode(texts)
        mine = _Request(list(texts))
        with self._ready:
            self.calls += 1
            self._queue.append(mine)
            while self._busy and not mine.done:
                self._ready.wait()
            if not mine.done:  # free: take every queued request, this one included
                self._busy = True
                batch, size = [], 0
                while self._queue and size + len(self._queue[0].texts) <= self.MAX_TEXTS:
                    size += len(self._queue[0].texts)
                    batch.append(self._queue.pop(0))
                if mine not in batch:  # the queue ahead was full: go first next time
                    batch.append(mine)
                    self._queue.remove(mine)
        if not mine.done:
            self._run(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _run(self, batch: list[_Request]) -> None:
        try:
            vectors = self._encode([t for r in batch for t in r.texts])
            at = 0
            for r in batch:
                r.result, at = vectors[at : at + len(r.texts)], at + len(r.texts)
        except BaseException as exc:  # every caller in the batch sees the failure
            for r in batch:
                r.error = exc
        finally:
            with self._ready:
                self.runs += 1
                for r in batch:
                    r.done = True
                self._busy = False
                self._ready.notify_all()


class _Request:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = False
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class VectorCache:
    """The vectors of the most recently used texts (least recently used ones go first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        found = {}
        with self._lock:
            for text in texts:
                if (vector := self._vectors.get(text)) is not None:
                    self._vectors.move_to_end(text)
                    found[text] = vector
        return found

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._vectors[text] = vector
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
