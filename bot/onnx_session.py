"""Opening an ONNX Runtime session fast: the graph-optimized copy of a model, cached beside it.

ONNX Runtime optimizes a model's graph (fusing attention, layer norms, GELU) every time it
opens it, and parsing one 90 MB file with the weights inside is slow as well. A copy saved after
optimization, with its weights in a side file, opens in about 0.2 s instead of 0.5 s on the
2-core machine, and computes the same outputs. It is saved at the "extended" level, which holds
no CPU-specific layouts, in a folder named for the ONNX Runtime version that wrote it; the
copies of other versions are removed when it is written.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PROVIDERS = ["CPUExecutionProvider"]


def open_session(onnx_file: Path, optimize: bool = True) -> Any:
    """An `InferenceSession` on `onnx_file`, through its optimized copy when `optimize`.

    The copy is made by the first process that needs it. A copy that does not open (a disk that
    lied, a file cut short) is removed, to be made again by the next start, and this process
    opens the original: an optimization never stops the bot.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    fast = optimized(onnx_file) if optimize else None
    if fast is not None:
        try:
            return ort.InferenceSession(str(fast), options, providers=PROVIDERS)
        except Exception as exc:
            log.warning("the optimized ONNX model %s does not open (%s): made again", fast, exc)
            _discard(fast.parent)
    return ort.InferenceSession(str(onnx_file), options, providers=PROVIDERS)


def optimized(onnx_file: Path) -> Path | None:
    """The optimized copy of `onnx_file`, made once; None if it cannot be made here (a
    read-only or full cache: the caller opens the original).

    Two processes starting at once make it once (a file lock); a kill mid-write leaves only a
    temporary folder, which the next writer removes.
    """
    import onnxruntime as ort

    folder = onnx_file.with_name(f"{onnx_file.stem}.ort-{ort.__version__}")
    model = folder / "model.onnx"
    if model.exists():
        return model
    try:
        from filelock import FileLock

        with FileLock(str(folder) + ".lock", timeout=600):
            if not model.exists():
                _write(ort, onnx_file, folder)
    except Exception as exc:  # an optimization only: never a reason not to start
        log.warning("cannot save the optimized ONNX model in %s (%s)", folder.parent, exc)
        return None
    return model


def _write(ort: Any, onnx_file: Path, folder: Path) -> None:
    for stale in folder.parent.glob(f"{folder.name}.*.tmp"):  # killed writers (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # a folder without its model.onnx is unusable
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    partial.mkdir(parents=True)
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(partial / "model.onnx")
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", "weights.bin"
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
        ort.InferenceSession(str(onnx_file), options, providers=PROVIDERS)
        os.replace(partial, folder)  # the whole folder appears at once
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    _remove_older(onnx_file, folder)


def _remove_older(onnx_file: Path, kept: Path) -> None:
    """The copies other ONNX Runtime versions made (~90 MB each), gone after an upgrade. A
    process still running an old version keeps its open session (Linux keeps a removed file's
    data while it is open) and makes its copy again at its next start; one it was writing just
    then fails to appear, and that process opens the original model."""
    version = re.compile(re.escape(onnx_file.stem) + r"\.ort-\d[\w.+]*")
    for old in onnx_file.parent.iterdir():
        if old != kept and version.fullmatch(old.name) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            Path(str(old) + ".lock").unlink(missing_ok=True)


def _discard(folder: Path) -> None:
    from filelock import FileLock

    try:
        with FileLock(str(folder) + ".lock", timeout=60):
            shutil.rmtree(folder, ignore_errors=True)
    except Exception as exc:
        log.warning("cannot remove %s (%s)", folder, exc)
