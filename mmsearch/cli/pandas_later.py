"""pymilvus without pandas at import, for the commands that answer once and exit.

pymilvus imports pandas (and with it pyarrow) at import time, for DataFrame inserts and type
inference mmsearch never asks for: 0.2-0.25 s of CPU in every cold `mmsearch search`, about a
fifth of it, on 2 cores shared with the engine's start and the ONNX session. While pymilvus's
modules run, `pandas` and `pandas.api.types` are stand-ins: the names pymilvus takes from them
are forwarders that import the real pandas on first use, and once pymilvus is in, the
stand-ins leave `sys.modules`, so any later `import pandas` gets the real one and
`pymilvus.orm.schema.pd.DataFrame` is pandas's own class. Nothing changes but when pandas is
imported. Only `cli.run` installs this, only for `search` and `stats`; the app, the indexer and
in-process callers import pymilvus as it is (their writer threads must not import pandas
late: two threads importing at once can see a partly initialised module).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
from contextlib import contextmanager

# What pymilvus 2.6's modules take from `pandas.api.types` at import (orm/schema.py, orm/types.py)
FORWARDED = ("infer_dtype", "is_array_like", "is_float", "is_list_like", "is_scalar")
STAND_INS = ("pandas", "pandas.api", "pandas.api.types")


class _TypeHint:
    """What `pd.DataFrame` names while pymilvus's modules are defined (their type hints)."""


def real_pandas():
    """The real pandas, imported now if it is not yet (the stand-ins out of the way first)."""
    for name in STAND_INS:
        if getattr(sys.modules.get(name), "__mmsearch_stand_in__", False):
            del sys.modules[name]
    return importlib.import_module("pandas")


def _forwarder(name: str):
    def forward(*args, **kwargs):
        return getattr(real_pandas().api.types, name)(*args, **kwargs)

    forward.__name__ = name
    return forward


def _stand_ins() -> dict[str, types.ModuleType]:
    top, api, api_types = (types.ModuleType(name) for name in STAND_INS)
    for module in (top, api, api_types):
        module.__mmsearch_stand_in__ = True
    top.__path__, api.__path__ = [], []  # packages, so `pandas.api.types` imports from them
    top.api, api.types = api, api_types
    top.DataFrame = _TypeHint
    top.__getattr__ = lambda name: getattr(real_pandas(), name)  # PEP 562
    for name in FORWARDED:
        setattr(api_types, name, _forwarder(name))
    return dict(zip(STAND_INS, (top, api, api_types)))


@contextmanager
def pandas_stand_ins():
    """Stand-ins for pandas in `sys.modules` for the duration (none if pandas is imported)."""
    if "pandas" in sys.modules:
        yield
        return
    modules = _stand_ins()
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        del modules["pandas"].DataFrame  # from now on `pd.DataFrame` is pandas's own


class PymilvusWithoutPandas(importlib.abc.MetaPathFinder):
    """Import hook: the first `import pymilvus` runs under `pandas_stand_ins`."""

    def find_spec(self, name, path=None, target=None):
        if name != "pymilvus":
            return None
        sys.meta_path.remove(self)  # once, and find the real spec without this hook
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            try:
                with pandas_stand_ins():
                    run_module(module)
            except Exception:  # noqa: BLE001 - a pymilvus that needs more of pandas: as it is
                for loaded in [m for m in sys.modules if m.startswith("pymilvus.")]:
                    del sys.modules[loaded]
                run_module(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Import pymilvus without pandas from now on in this process (if it is not in yet)."""
    if "pymilvus" not in sys.modules and \
            not any(isinstance(f, PymilvusWithoutPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, PymilvusWithoutPandas())
