"""Whoosh imported without three modules it loads at import time and a search never uses.

``whoosh.compat`` imports ``urllib.request`` (for a download helper), which brings in
``http.client``, ``ssl`` and the ``email`` package; ``whoosh.reading`` imports the
``cached_property`` backport, which imports ``asyncio``; ``whoosh.query.terms`` imports
``whoosh.lang.morph_en`` (English word variations, hundreds of regular expressions compiled at
import) for a query type we never build.  Together they were half the cost of importing Whoosh:
a large part of an ``archiver search`` process.

:func:`install` adds a finder for exactly those Whoosh modules (:data:`LEANED`): while one of
them runs its body, the module it would pull in (when not imported yet) is a stand-in that
gives the one name Whoosh takes (``urlretrieve`` and ``variations``, which import the real
module when called; ``functools.cached_property``, the standard library's equivalent).  The stand-ins are removed
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

#: The Whoosh modules whose bodies run with stand-ins, and the modules those stand in for.
LEANED = {
    "whoosh.compat": ("urllib.request",),
    "whoosh.reading": ("cached_property",),
    "whoosh.query.terms": ("whoosh.lang.morph_en",),
}
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


def _variations(*args: Any, **kwargs: Any) -> Any:
    return _real("whoosh.lang.morph_en").variations(*args, **kwargs)


def _stand_in(name: str) -> _StandIn:
    given: dict[str, Any] = {
        "urllib.request": {"urlretrieve": _urlretrieve},
        "cached_property": {"cached_property": functools.cached_property},
        "whoosh.lang.morph_en": {"variations": _variations},
    }[name]
    return _StandIn(name, given)


class _LeanLoader:
    """Runs a Whoosh module's body with the stand-ins in place, then takes them out."""

    def __init__(self, loader: Any, replaced: tuple[str, ...]) -> None:
        self.loader, self.replaced = loader, replaced

    def __getattr__(self, attribute: str) -> Any:  # get_source, is_package…: the wrapped loader's
        return getattr(self.loader, attribute)

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        placed = []
        with _lock:
            for name in self.replaced:
                if name not in sys.modules:
                    sys.modules[name] = stand_in = _stand_in(name)
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
                    spec.loader = _LeanLoader(spec.loader, LEANED[name])
                return spec
        return None


def install() -> None:
    """Import Whoosh lean from now on (idempotent; a no-op once Whoosh is imported)."""
    if not any(isinstance(finder, _LeanFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LeanFinder())
