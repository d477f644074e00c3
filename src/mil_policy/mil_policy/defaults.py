"""The embedded default: a small meta-trained placing checkpoint and one held-out demo bag, shipped in
the package so a new user sees one-shot placing without training anything (``./mil place``).

Both were made by this repository's own tools (``generate_demos`` and ``train``); ``docs/results.md``
has the commands.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"


def default_checkpoint() -> Path:
    return ASSETS / "placing_checkpoint"


def default_demo_bag() -> Path:
    return ASSETS / "placing_demo"
