"""Redraw only what changed: a Static update that skips no-op refreshes, scroll views whose
scrollable size changes without a layout pass, and a screen whose focus moving repaints
only the two widgets it moves between (the key bar is widgets/key_bar.py).

`Static.update` asks for a layout pass even when the text is the same, or when the new
text takes the same height; an Input asks for one on every key (its scrollable width is
the text's), and a RichLog on every line written. Each makes the next frame re-arrange
the whole screen (30-60 ms on two shared cores at 120x40), and an enter or a text
arriving meanwhile waits behind it (docs/performance.md, "What made the console keep up").
"""

from __future__ import annotations

from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.css.scalar import Unit
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.screen import Screen
from textual.strip import Strip
from textual.scroll_view import ScrollView
from textual.widget import Widget
from textual.widgets import Input, RichLog, Static

from .clustered import ClusteredCompositor


def show_text(widget: Static, content: Text | str, *, layout: bool | None = None) -> None:
    """`widget.update(content)` unless it already shows exactly that (text and styles).

    A layout pass is asked for only when the widget's height changes with the new text
    (it has `height: auto` and the text wraps to another number of lines, within its
    min/max height). `layout=False` says the size cannot change (a fixed height);
    `layout=True` asks for the pass whatever the text."""
    if same_text(widget.content, content):
        return
    if layout is not None:
        widget.update(content, layout=layout)
        return
    widget.update(content, layout=False)
    if _height_changed(widget):
        widget.refresh(layout=True)


def _height_changed(widget: Widget) -> bool:
    """Whether the widget's content now needs another height than the one on screen. True
    when unsure (not laid out yet, hidden, an auto width, a height bound not in cells)."""
    styles = widget.styles
    if not widget.display or not widget.size.width or (styles.width is not None and styles.width.is_auto):
        return True
    height = styles.height
    if height is not None and not height.is_auto:
        return False  # the CSS sets it: the text cannot change it
    content = widget.content_size
    needed = widget.get_content_height(content, widget.app.size, content.width) + styles.gutter.height
    for bound, clamp in ((styles.max_height, min), (styles.min_height, max)):
        if bound is not None:
            if bound.unit != Unit.CELLS:
                return True
            needed = clamp(needed, int(bound.value))
    return needed != widget.size.height


class SteadyScreen(Screen):
    """The console's main screen: moving the focus repaints the two widgets it moves
    between (their own focus and blur do), not the whole screen, which Textual's
    `Screen.focused` asks for (11 ms at 120x40; twice per text when one text at a time
    comes and is answered: the composer gives up the focus while it has nothing to answer)."""

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name, id, classes)
        self._compositor = ClusteredCompositor()


def text_line(text: Text, console: Console, width: int, base: Style) -> Strip:
    """One line of `text` for a line-drawn widget: `width` cells, with the widget's style
    (`base`: its background, colour, bold) under the text's own. Without it the text is
    drawn over the terminal's default background and only the padding has the widget's."""
    segments = [segment for segment in text.render(console, end="") if segment.text != "\n"]
    return Strip(segments).apply_style(base).crop_extend(0, width, base)


class FrameStyled:
    """For a widget drawn line by line: its Rich style, looked up once per frame rather than
    once per line. Textual computes `rich_style` afresh on each call (a walk up the DOM
    for the backgrounds): per line it was a third of a frame of the thread view."""

    frame_style: Style = Style()

    def render_lines(self, crop: Region) -> list[Strip]:
        self.frame_style = self.rich_style  # type: ignore[attr-defined]
        return super().render_lines(crop)  # type: ignore[misc]


class SteadyScroll:
    """For a scroll view whose box the CSS sets (a fixed height, `1fr`): a new scrollable
    size (a longer text in an input, a line written to a log) updates the scrollbars and
    repaints the view, without the layout pass of the whole screen that Textual's
    `virtual_size` asks for. A scrollbar that appears or goes still asks for its layout
    (`show_vertical_scrollbar` does)."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False, repaint=True)

    def watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)  # type: ignore[attr-defined]


class SteadyInput(SteadyScroll, Input):
    """An Input of fixed size whose key presses repaint it, and nothing else.

    Its text still scrolls to keep the cursor in view; only the (zero-height) horizontal
    scrollbar is never shown: an empty input's scrollable width is its placeholder's, so
    Textual's bar would come and go, each time with a layout pass, as the operator types
    into a field whose placeholder is wider than the field."""

    DEFAULT_CSS = """
    SteadyInput { overflow-x: hidden; }
    """


class SteadyLog(FrameStyled, SteadyScroll, RichLog):
    """A RichLog of fixed size whose writes repaint it, and nothing else."""

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if scroll_y + y >= len(self.lines):
            return Strip.blank(width, self.frame_style)
        return self._render_line(scroll_y + y, scroll_x, width).apply_style(self.frame_style)


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """Give a line-rendering view of fixed size (its height comes from the CSS) a new
    scrollable size, without the layout pass of the whole screen that assigning
    `virtual_size` asks for. Its scrollbars follow, as OptionList does it; a scrollbar
    that appears or goes still asks for its layout."""
    if size != view.virtual_size:
        view.set_reactive(ScrollView.virtual_size, size)
        view._scroll_update(size)
    view.refresh()


def same_text(shown: object, content: Text | str) -> bool:
    if isinstance(content, Text):
        # Text's == compares the characters and spans only, not the base style
        return (
            isinstance(shown, Text)
            and shown.plain == content.plain
            and shown.style == content.style
            and shown.spans == content.spans
            and (shown.justify, shown.overflow, shown.no_wrap, shown.end)
            == (content.justify, content.overflow, content.no_wrap, content.end)
        )
    return type(shown) is str and shown == content
