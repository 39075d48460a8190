"""Whoosh imported without two modules it loads at import time and the index never uses.

``whoosh.compat`` imports ``urllib.request`` (for a download helper), which brings in
``http.client``, ``ssl`` and the ``email`` package; ``whoosh.reading`` imports the
``cached_property`` backport, which imports ``asyncio``.  Together they were half the cost of
importing Whoosh: a large part of an ``archiver search`` process, which does nothing with them.

:func:`install` adds a finder for exactly those two Whoosh modules: while one of them runs its
body, ``urllib.request`` and ``cached_property`` (when not imported yet) are stand-ins that
give the one name Whoosh takes (``urlretrieve``, which imports the real module when called;
``functools.cached_property``, the standard library's equivalent).  The stand-ins are removed
from ``sys.modules`` as soon as that body has run, so any later import gets the real modules,
and a stand-in asked for any other name imports the real module and answers from it (another
thread importing meanwhile still gets what it asked for).  Whoosh's behaviour is unchanged:
its tests in ``tests/unit/test_index*.py`` run on the modules imported this way.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from types import ModuleType
from typing import Any

#: The Whoosh modules whose bodies run with the stand-ins.
LEANED = ("whoosh.compat", "whoosh.reading")
_lock = threading.Lock()


def _real(name: str) -> ModuleType:
    """The real module ``name``: the stand-in is dropped from ``sys.modules`` first."""
    with _lock:
        if isinstance(sys.modules.get(name), _StandIn):
            del sys.modules[name]
    return importlib.import_module(name)


class _StandIn(ModuleType):
    """A module that gives one name itself and takes every other from the real module."""

    def __init__(self, name: str, given: dict[str, Any]) -> None:
        super().__init__(name)
        self.__dict__.update(given)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # the import system asks for __path__ & co.: a plain module has none
            raise AttributeError(attribute)
        return getattr(_real(self.__name__), attribute)


def _urlretrieve(*args: Any, **kwargs: Any) -> Any:
    return _real("urllib.request").urlretrieve(*args, **kwargs)


def _stand_ins() -> dict[str, _StandIn]:
    return {
        "urllib.request": _StandIn("urllib.request", {"urlretrieve": _urlretrieve}),
        "cached_property": _StandIn("cached_property", {"cached_property": functools.cached_property}),
    }


class _LeanLoader:
    """Runs a Whoosh module's body with the stand-ins in place, then takes them out."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, attribute: str) -> Any:  # get_source, is_package…: the wrapped loader's
        return getattr(self.loader, attribute)

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        placed = []
        with _lock:
            for name, stand_in in _stand_ins().items():
                if name not in sys.modules:
                    sys.modules[name] = stand_in
                    placed.append(stand_in)
        try:
            self.loader.exec_module(module)
        finally:
            with _lock:
                for stand_in in placed:
                    if sys.modules.get(stand_in.__name__) is stand_in:
                        del sys.modules[stand_in.__name__]


class _LeanFinder:
    """A meta path finder that answers for :data:`LEANED` only (everything else: the usual finders)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in LEANED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _LeanLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Import Whoosh lean from now on (idempotent; a no-op once Whoosh is imported)."""
    if not any(isinstance(finder, _LeanFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LeanFinder())
