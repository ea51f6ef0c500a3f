"""Third-party packages whose `__init__` imports far more than we use, made lazy.

langsmith 0.15's `langsmith.types` package imports ~160 generated API models in its
`__init__` (0.3-0.6 s, a tenth of a cold `newsdesk ask`), yet LangChain's runnables reach it
only for one `Literal` alias in a submodule (`langsmith.types.run_select_field`, imported by
`langsmith.run_trees`). A deferred package is registered under its name with its real
`__path__`, so its submodules import as usual; its own `__init__` runs on the first lookup of
a name it defines. Nothing changes for code that uses those names: it gets the real objects.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from typing import Any

DEFERRED = ("langsmith.types",)
_lock = threading.RLock()


def defer(name: str) -> bool:
    """Register package `name` with its `__init__` not yet run; False when that cannot be done
    (already imported, not installed, not a package), and then nothing changes."""
    parent, _, child = name.rpartition(".")
    with _lock:
        if name in sys.modules:
            return False
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return False
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return False
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader

        ran: list[bool] = []  # whether __init__ has started (it may look itself up)

        def load_on_first_use(attr: str) -> Any:
            if not attr.startswith("__"):  # import machinery probing dunders: not a use
                with _lock:  # other threads wait here until __init__ has run
                    if not ran:
                        ran.append(True)
                        try:
                            loader.exec_module(module)
                        except BaseException:
                            ran.clear()
                            raise
                if attr in module.__dict__:
                    return module.__dict__[attr]
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")

        module.__getattr__ = load_on_first_use  # type: ignore[method-assign]
        sys.modules[name] = module
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        return True


def defer_heavy_packages() -> None:
    for name in DEFERRED:
        defer(name)
