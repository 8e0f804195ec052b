"""Scene looks for the synthetic set's "look" and "marked" question styles: whole-frame patterns a
coarse view resolves.

A look is a light-grey pattern over the scene's background, drawn on a grid of `GRID` x `GRID` cells
(14 px at 112 px: one 14-px vision patch per cell, so a 28-px vision token sees 2 x 2 cells). Every
pattern lights large areas of the frame, so the look survives the global view's resolution and a
moderate downscale; a question can then name a scene by what the overview shows instead of by its time.

In "marked" style the looks are a *clock*: scene k always shows `CLOCK_LOOKS[k]`, a code on the 2 x 2
cells one vision token sees, the same in every token of the frame and lighting at most two of the
four cells (so the scene's background, which marks the asked scene, shows in every token too). In
"signed" style only the asked scene k shows a pattern, `SIGN_LOOKS[k]`, and every other scene is plain:
the pattern is both the mark and the clock, so it can be read from the whole view at once.
Pure numpy, no I/O.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

GRID = 8  # cells per side of the frame
# The pattern's colour, RGB: far from the dull backgrounds and from every evidence colour (white is 245),
# so a look is never mistaken for evidence and compression cannot blur one into the other.
LOOK_RGB: tuple[int, int, int] = (150, 150, 150)
# The one background of "look" scenes: the pattern alone tells scenes apart (the "scene" style already
# tells them apart by background tint).
LOOK_BACKGROUND = "slate"

_Cells = Callable[[np.ndarray, np.ndarray], np.ndarray]
# Look name -> which cells are lit, from the cells' row and column indices (0 .. GRID-1).
_PATTERNS: dict[str, _Cells] = {
    "plain": lambda r, c: np.zeros_like(r, dtype=bool),
    "striped": lambda r, c: r % 2 == 0,  # horizontal stripes
    "barred": lambda r, c: c % 2 == 0,  # vertical stripes
    "checked": lambda r, c: (r + c) % 2 == 0,
    "dotted": lambda r, c: (r % 2 == 0) & (c % 2 == 0),
    "framed": lambda r, c: (r == 0) | (c == 0) | (r == GRID - 1) | (c == GRID - 1),
    "crossed": lambda r, c: (abs(2 * r - (GRID - 1)) <= 1) | (abs(2 * c - (GRID - 1)) <= 1),
    "boxed": lambda r, c: (abs(2 * r - (GRID - 1)) <= 3) & (abs(2 * c - (GRID - 1)) <= 3),
    "slashed": lambda r, c: (r + c) % 4 < 2,  # diagonal bands
    "ringed": lambda r, c: np.maximum(abs(2 * r - (GRID - 1)), abs(2 * c - (GRID - 1))) % 4 == 1,
    # The clock's other codes: the phase-shifted twins of dotted, striped and barred.
    "speckled": lambda r, c: (r % 2 == 1) & (c % 2 == 1),
    "ruled": lambda r, c: r % 2 == 1,
    "ribbed": lambda r, c: c % 2 == 1,
}
# The "look" style's looks, drawn in a random order per video (the clock codes are not among them).
LOOKS: tuple[str, ...] = ("plain", "striped", "barred", "checked", "dotted", "framed", "crossed", "boxed",
                          "slashed", "ringed")
# The "marked" style's clock: scene k of every video shows CLOCK_LOOKS[k].
CLOCK_LOOKS: tuple[str, ...] = ("plain", "dotted", "speckled", "striped", "ruled", "barred", "ribbed", "checked")
# The "signed" style: every scene plain except the asked one, which shows SIGN_LOOKS[k] for scene k.
SIGN_LOOKS: tuple[str, ...] = ("dotted", "speckled", "striped", "ruled", "barred", "ribbed", "checked", "slashed")
# The background of the scene(s) a "marked" question asks about; every other scene has LOOK_BACKGROUND.
MARK_BACKGROUND = "maroon"


def look_mask(look: str, height: int, width: int) -> np.ndarray:
    """bool [height, width]: the pixels the look lights. Cell edges are rounded to whole pixels, so
    every side need not be a multiple of GRID. Raises KeyError for an unknown look."""
    rows = np.minimum(np.arange(height) * GRID // height, GRID - 1)
    cols = np.minimum(np.arange(width) * GRID // width, GRID - 1)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    return _PATTERNS[look](r, c)
