"""Old import paths (``circuits.model``, ``circuits.store``, ...) of release 0.1, kept for one release.

0.2 moved every module into a stage package (``circuits.core.model``, ``circuits.discovery.store``,
...). Importing an old path gives the new module itself (the same object, so monkeypatching either
name patches both) and a ``DeprecationWarning`` naming the new path. ``circuits.circuit``,
``circuits.steer``, ``circuits.judges``, ``circuits.va`` and ``circuits.figures`` are packages now and
export the old modules' public names themselves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

OLD_PATHS: dict[str, str] = {
    "circuits.model": "circuits.core.model",
    "circuits.emotions": "circuits.core.emotions",
    "circuits.sev": "circuits.core.sev",
    "circuits.generate": "circuits.core.generate",
    "circuits.intervene": "circuits.core.hooks",
    "circuits.io": "circuits.core.artifacts",
    "circuits.resources": "circuits.core.resources",
    "circuits.store": "circuits.discovery.store",
    "circuits.directions": "circuits.discovery.directions",
    "circuits.decompose": "circuits.discovery.decompose",
    "circuits.dla": "circuits.discovery.dla",
    "circuits.components": "circuits.discovery.components",
    "circuits.ablate": "circuits.discovery.ablation",
    "circuits.influence": "circuits.discovery.influence",
    "circuits.evaluate": "circuits.steer.evaluate",
    "circuits.judge": "circuits.judges.lexicon",
    "circuits.discover": "circuits.runs.discover",
    "circuits.tiny": "circuits.toy.tiny",
}
"""0.1 module path -> its 0.2 home."""


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in OLD_PATHS:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = OLD_PATHS[spec.name]
        warnings.warn(f"{spec.name} moved to {new} in emotion-circuits 0.2; the old path goes in 0.3",
                      DeprecationWarning, stacklevel=3)
        module = importlib.import_module(new)
        self._real_spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._real_spec  # importlib set the alias's spec on the real module
        sys.modules[self._real_spec.name] = module


def install() -> None:
    if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _OldPathFinder())
