"""A compositor whose partial updates render only the widgets near what changed.

Textual renders a partial update inside one crop, the bounding box of every changed
region, and asks each widget overlapping that box for its lines, clean or not (the
styles cache walks every line and re-applies the filters). When a held text arrives, the
queue at the top left and the status bar at the bottom change in the same frame, so the
box is the whole screen and some 30 widgets are rendered to update two: 9-10 ms of a
frame at 120x40, which the arrival waits for (docs/performance.md, "Frames of what
changed").

`ClusteredCompositor` groups the changed regions into clusters of regions that touch,
renders each cluster's box on its own, and merges the pieces. Which widget wins a cell is
decided as before, within each box, by every widget that overlaps it: a piece is kept only
for the cells of its own box, so the merged update is the one the single crop would give.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from textual._compositor import ChopsUpdate, Compositor
from textual.geometry import Region
from textual.strip import Strip

__all__ = ["MAX_REGIONS", "ClusteredCompositor", "clusters"]

MAX_REGIONS = 48
"""More changed regions than this in one frame (a scroll, a resize) make one box of them
all: clustering is quadratic, and such a frame changes most of the screen anyway."""


def clusters(regions: Iterable[Region]) -> list[Region]:
    """The bounding boxes of the groups of regions that overlap or touch (side by side or
    corner to corner, no column or line between them), each box merged with any other it
    then reaches."""
    boxes = [region for region in regions if region]
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out: list[Region] = []
        for box in boxes:
            grown = box.grow((1, 1, 1, 1))
            for i, other in enumerate(out):
                if grown.overlaps(other):
                    out[i] = other.union(box)
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return boxes


class ClusteredCompositor(Compositor):
    """Partial updates rendered per cluster of changed regions (see the module's text)."""

    last_spans: list[tuple[int, int, int]] = []
    """The (line, first column, end column) spans of the newest partial update: what a frame
    repainted (for tests and diagnostics)."""

    def render_partial_update(self) -> ChopsUpdate | None:
        regions = self._dirty_regions
        if not regions:
            return None
        screen = self.size.region
        grouped = clusters(regions) if len(regions) <= MAX_REGIONS else [Region.from_union(list(regions))]
        boxes = [crop for box in grouped if (crop := box.intersection(screen))]
        update_regions = list(regions)
        regions.clear()
        spans = self.last_spans = list(self._regions_to_spans(update_regions))
        rendered = {y for y, _, _ in spans}
        cuts = self.cuts
        merged: list[dict[int, Strip | None]] = [dict.fromkeys(cut_set[:-1]) for cut_set in cuts]
        visible = self.visible_widgets
        shown = [(widget, region, clip, region.intersection(clip)) for widget, (region, clip) in visible.items()]
        try:
            for box in boxes:
                lines = {y for y in rendered if box.y <= y < box.bottom}
                if not lines:
                    continue
                # Only the widgets whose visible part reaches into the box, in render order:
                # Textual's own test is the clip (the parent's area), which reaches far wider.
                overlaps = box.overlaps
                self._visible_widgets = {
                    widget: (region, clip) for widget, region, clip, seen in shown if overlaps(seen)
                }
                part = self._render_chops(box, lines.__contains__)
                for y in lines:
                    _keep(merged[y], part[y], cuts[y], box.x, box.right)
        finally:
            self._visible_widgets = visible
        chop_ends = [cut_set[1:] for cut_set in cuts]
        return ChopsUpdate(merged, spans, chop_ends)


def _keep(line: dict[int, Strip | None], part: Mapping[int, Strip | None], cut_set: Sequence[int],
          left: int, right: int) -> None:
    """Copy into `line` the pieces of `part` whose columns [cut, next cut) reach into
    [left, right): there every widget covering the piece overlaps the box it was rendered in."""
    for cut, end in zip(cut_set, cut_set[1:]):
        if end <= left or cut >= right:
            continue
        strip = part.get(cut)
        if strip is not None and line.get(cut) is None:
            line[cut] = strip
