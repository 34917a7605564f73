"""Run-wide pytest hooks (doctests of ``workbench``, tests, notebooks): skips per leg."""

from __future__ import annotations

from pathlib import Path

import pytest

# What each marker needs. A marked test skips, with this reason, where it is missing: the
# newest-release leg of `./dev test` (Python 3.13, no torch wheel but multi-GB CUDA builds)
# runs everything else; the 3.11 leg has all of it and runs every test.
_MARKER_NEEDS = {
    "torch": ("torch",),
    "cluster": ("torch", "ipyparallel"),
    "browser": ("playwright", "jupyterlab"),
    "notebook": ("nbclient", "ipykernel"),
}
# Modules whose doctests run torch (they import it lazily, so they import without it).
_TORCH_MODULES = ("workbench/training/", "workbench/models/", "workbench/cluster/")
_TORCH_FILES = ("workbench/chips/torch.py", "workbench/chips/collate.py")


def _needs_torch(item: pytest.Item) -> bool:
    """Whether a doctest runs torch: it lives in a torch layer or its examples use torch."""
    if not isinstance(item, pytest.DoctestItem) or item.dtest is None:
        return False
    path = Path(str(item.path)).as_posix()
    if any(part in path for part in _TORCH_MODULES) or path.endswith(_TORCH_FILES):
        return True
    return any("torch" in example.source for example in item.dtest.examples)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip marked tests whose packages are missing on this leg, saying which and why."""
    from workbench._optional import has_module

    for item in items:
        if _needs_torch(item):
            item.add_marker(pytest.mark.torch)
        for marker, modules in _MARKER_NEEDS.items():
            if item.get_closest_marker(marker) is None:
                continue
            missing = [m for m in modules if not has_module(m)]
            if missing:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"@{marker} test: {', '.join(missing)} not installed on this "
                        "leg (the torch leg of ./dev test runs it)"
                    )
                )
