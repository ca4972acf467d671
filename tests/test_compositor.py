"""The console's compositor (tui/widgets/clustered.py) renders each cluster of changed regions
on its own and merges the pieces: what reaches the terminal must be exactly what Textual's
one crop around all of them gives, on the real app's screen, for any set of regions. And
the panels drawn as kept lines (tui/widgets/lines.py) repaint only the lines that change."""

from __future__ import annotations

import asyncio
import re

from hypothesis import HealthCheck, given, settings, strategies as st
from textual._compositor import Compositor
from textual.geometry import Region

from tui.widgets.clustered import ClusteredCompositor, clusters
from tui.widgets.lines import TextLines

from .conftest import INCOMING, wait_until
from .test_desk import make_app, post

WIDTH, HEIGHT = 120, 40

_IDLE_MOVES = re.compile(r"(?:\x1b\[\d+;\d+H)+(?=\s*(?:\x1b\[\d+;\d+H|$))")
"""Cursor moves followed by another move (a line break between) or by nothing: they write
no cell. Textual's update
has one where a piece starts at the end of a changed span (it is skipped there, after the
move); the clustered update leaves that piece out."""


@st.composite
def regions(draw) -> Region:
    x = draw(st.integers(0, WIDTH - 1))
    y = draw(st.integers(0, HEIGHT - 1))
    return Region(x, y, draw(st.integers(1, WIDTH - x)), draw(st.integers(1, min(12, HEIGHT - y))))


def test_clusters_cover_every_region_and_keep_apart_what_does_not_touch():
    top, bottom = Region(0, 0, 35, 18), Region(0, 38, 120, 1)
    assert sorted(clusters([top, bottom]), key=lambda r: r.y) == [top, bottom]
    beside = Region(35, 5, 10, 2)  # touching the first: one cluster
    assert sorted(clusters([top, bottom, beside]), key=lambda r: r.y) == [top.union(beside), bottom]
    chained = [Region(0, 0, 2, 1), Region(11, 0, 2, 1), Region(2, 0, 9, 1)]  # the third touches both
    assert clusters(chained) == [Region(0, 0, 13, 1)]
    assert clusters([Region(0, 0, 2, 1), Region(2, 1, 2, 1)]) == [Region(0, 0, 4, 2)], "corner to corner"
    assert len(clusters([Region(0, 0, 2, 1), Region(3, 0, 2, 1)])) == 2, "a column between them"


async def test_a_clustered_update_is_the_update_of_one_crop_on_the_real_screen(store, tmp_path):
    app = make_app(store, tmp_path, reply_timeout=60)
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        requests = [asyncio.create_task(post(app.gateway_url, {**INCOMING, "phone_number": f"555000020{n}",
                                                               "body": f"text number {n} " * 4}))
                    for n in range(4)]
        await wait_until(pilot, lambda: app.screen.focused is not None and len(app.query("HeldQueue")) == 1)
        await pilot.pause(1.2)
        compositor = app.screen._compositor
        assert isinstance(compositor, ClusteredCompositor)
        console = app.console

        def rendered(update_of, dirty: list[Region]) -> str:
            compositor._dirty_regions.clear()
            compositor._dirty_regions.update(dirty)
            update = update_of(compositor)
            return "" if update is None else _IDLE_MOVES.sub("", update.render_segments(console))

        @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(regions(), min_size=1, max_size=7))
        def same_as_one_crop(dirty: list[Region]) -> None:
            ours = rendered(ClusteredCompositor.render_partial_update, dirty)
            textuals = rendered(Compositor.render_partial_update, dirty)
            assert ours == textuals

        same_as_one_crop()
        # the frame a held text's arrival makes: the queue at the top, the status bar at the bottom
        assert rendered(ClusteredCompositor.render_partial_update, [Region(0, 1, 35, 18), Region(0, 38, 120, 1)]) \
            == rendered(Compositor.render_partial_update, [Region(0, 1, 35, 18), Region(0, 38, 120, 1)])
        for request in requests:
            request.cancel()


async def test_kept_lines_repaint_only_the_lines_that_change(store, tmp_path):
    from rich.text import Text

    app = make_app(store, tmp_path, reply_timeout=60)
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        panel = app.query_one("#contact", TextLines)
        panel.show(Text("Phone 5550000300\nSession     open\nSubscribed  no"))
        await pilot.pause(0.3)
        compositor = app.screen._compositor
        top = panel.content_region.y
        panel.show(Text("Phone 5550000300\nSession     closed\nSubscribed  no"))
        await wait_until(pilot, lambda: not panel._repaint_regions and compositor.last_spans
                         and {y for y, _, _ in compositor.last_spans} == {top + 1})
        assert "closed" in str(panel.render())
        shown = [line.text for line in panel.render_lines(panel.size.region)]
        assert shown[1].strip() == "Session     closed" and shown[0].strip() == "Phone 5550000300"
        spans = list(compositor.last_spans)
        panel.show(Text("Phone 5550000300\nSession     closed\nSubscribed  no"))  # the same: nothing
        await pilot.pause(0.2)
        assert compositor.last_spans == spans
