"""The key bar at the foot of the main screen: the keys that work here and now, dimmed when
they do not apply (send with nothing to answer), and the command palette's key.

One line drawn as one widget. Textual's Footer is a widget per key: dimming a key
restyles it, and the keys changed twice per text when one text at a time came and was
answered (a fifth of the console's time per text, with 14 more widgets in every frame).
Here a change of keys is a repaint of one line. A click on a key presses it; hovering
one shows what it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from .steady import text_line


@dataclass(frozen=True, slots=True)
class Key:
    """One key as shown: what to press, what it does, and whether it applies now."""

    key: str
    display: str
    description: str
    action: str
    enabled: bool
    tooltip: str


class KeyBar(Widget):
    """The active bindings of the screen it is on, redrawn when they change."""

    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description", "key-bar--disabled"}

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-bar--disabled {
            text-style: dim;
        }
    }
    """

    PALETTE_GAP = 2
    """Columns kept free between the keys and the palette's key at the right."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.keys: tuple[Key, ...] = ()
        """What the bar shows, in order."""
        self.palette: Key | None = None
        """The command palette's key, drawn at the right."""
        self._spans: list[tuple[int, int, Key]] = []
        """(first column, end column, key) of each key drawn, for clicks and tooltips."""
        self._check_pending = False

    @property
    def usable_actions(self) -> list[str]:
        """The actions of the keys shown as usable (the rest are dimmed)."""
        return [key.action for key in self.keys if key.enabled]

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        # The signals of one refresh (a focus change sends several) make one check.
        if not self._check_pending:
            self._check_pending = True
            self.call_after_refresh(self._check)

    def _check(self) -> None:
        self._check_pending = False
        if not self.is_attached or not self.app.app_focus:
            return  # as Footer: the keys stay as shown while the terminal has no focus
        active = self.screen.active_bindings
        keys = tuple(self._key(binding, enabled, tooltip) for (_, binding, enabled, tooltip) in active.values()
                     if binding.show)
        palette = None
        if self.app.ENABLE_COMMAND_PALETTE and self.app.COMMAND_PALETTE_BINDING in active:
            _, binding, enabled, tooltip = active[self.app.COMMAND_PALETTE_BINDING]
            palette = self._key(binding, enabled, tooltip)
        if (keys, palette) != (self.keys, self.palette):
            self.keys, self.palette = keys, palette
            self.refresh()

    def _key(self, binding, enabled: bool, tooltip: str) -> Key:
        return Key(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                   enabled, tooltip or binding.tooltip)

    def _palette_text(self) -> Text:
        text = Text(end="")
        if self.palette is not None:
            text.append(f" {self.palette.display} ", self.get_component_rich_style("key-bar--key"))
            text.append(f"{self.palette.description} ", self.get_component_rich_style("key-bar--description"))
        return text

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y:
            return Strip.blank(width, base)
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        dim = self.get_component_rich_style("key-bar--disabled", partial=True)
        palette = self._palette_text()
        room = max(0, width - palette.cell_len - (self.PALETTE_GAP if palette.cell_len else 0))
        line = Text(end="", no_wrap=True, overflow="crop")
        self._spans = []
        for key in self.keys:
            start = line.cell_len
            line.append(f" {key.display} ", key_style + dim if not key.enabled else key_style)
            line.append(f"{key.description} ", description_style + dim if not key.enabled else description_style)
            self._spans.append((start, line.cell_len, key))
        if line.cell_len > room:
            line.truncate(max(0, room - 1))
            line.append("…", description_style)
        line.pad_right(max(0, width - line.cell_len - palette.cell_len))
        line.append_text(palette)
        return text_line(line, self.app.console, width, base)

    def _key_at(self, x: int) -> Key | None:
        palette_at = self.size.width - self._palette_text().cell_len
        if self.palette is not None and x >= palette_at:
            return self.palette
        return next((key for start, end, key in self._spans if start <= x < min(end, palette_at - self.PALETTE_GAP)), None)

    def on_click(self, event: events.Click) -> None:
        event.stop()
        key = self._key_at(event.x)
        if key is None:
            return
        if key.enabled:
            self.app.simulate_key(key.key.split(",")[0])
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        key = self._key_at(event.x)
        self.tooltip = (key.tooltip or key.description) if key is not None else None

    def on_leave(self) -> None:
        self.tooltip = None


__all__ = ["Key", "KeyBar"]
