"""Text of a fixed-size panel, drawn line by line and kept: showing new text repaints only
the lines that differ from what is on screen.

A `Static` draws its text through Textual's content pipeline (wrap, format, strips) on every
update, and an update repaints every line of it: about 1.3 ms for a one-line title or the
status bar, 5 ms for the 28 lines of the contact panel at 120x40, in frames a text arriving
or an answer going out waits for (docs/performance.md, "Frames of what changed"). The
titles, the status bar and the contact panel have their size from the CSS, so their text
never needs a layout pass; they are `TextLines`.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from .steady import same_text, text_line

__all__ = ["TextLines"]


class TextLines(Widget):
    """Shows `show(text)`, wrapped to its width, in a box whose size the CSS sets (lines
    beyond its height are cut, as a Static of that height cuts them). `render()` is the
    text shown."""

    def __init__(self, content: Text | str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._text = _as_text(content)
        self._lines: list[Strip] = []
        self._drawn_for: tuple[int, Style] | None = None
        """(width, base style) the kept lines were drawn for; None: draw them again."""

    @property
    def text(self) -> Text:
        return self._text

    def render(self) -> Text:
        return self._text

    def show(self, content: Text | str) -> None:
        """Show `content`; repaint the lines whose drawing changed, and nothing when none did."""
        text = _as_text(content)
        if same_text(self._text, text):
            return
        self._text = text
        if self._drawn_for is None or not self.is_mounted:
            self.refresh()
            return
        old = self._lines
        self._lines = self._draw(*self._drawn_for)
        new = self._lines
        width = self._drawn_for[0]
        changed = [y for y in range(max(len(old), len(new))) if y >= len(old) or y >= len(new) or old[y] != new[y]]
        if changed:
            self.refresh(*(Region(0, y, width, 1) for y in changed))

    def _draw(self, width: int, base: Style) -> list[Strip]:
        console = self.app.console
        lines = self._text.wrap(console, width) if width > 0 else []  # the text's own overflow
        return [text_line(line, console, width, base)
                for line in lines[: max(0, self.content_region.height or len(lines))]]

    def render_lines(self, crop: Region) -> list[Strip]:
        key = (self.content_region.width, self.rich_style)
        if key != self._drawn_for:
            self._drawn_for = key
            self._lines = self._draw(*key)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        if self._drawn_for is None:
            return Strip.blank(self.content_region.width)
        width, base = self._drawn_for
        return self._lines[y] if y < len(self._lines) else Strip.blank(width, base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn_for = None  # a theme or a class changed: draw again in the new style

    def on_resize(self) -> None:
        self._drawn_for = None
        self.refresh()


def _as_text(content: Text | str) -> Text:
    return content if isinstance(content, Text) else Text(content, end="")
