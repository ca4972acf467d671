"""One line: where to point the SL, how many texts wait and were missed, whether api_keys
are checked, and the other counts. What matters most comes first, so a narrow terminal
cuts only the least important: the Gateway URL, held and missed always show."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive

from .lines import TextLines


class StatusBar(TextLines):
    """Drawn as a kept line (widgets/lines.py): a count that changes repaints the bar's one
    line, without Textual's content pipeline."""

    gateway_url: reactive[str] = reactive("starting…", repaint=False)
    key_state: reactive[str] = reactive("", repaint=False)
    counts: reactive[dict[str, int]] = reactive(dict, repaint=False)
    """Assigned a fresh dict each time: the bar redraws only when a count differs."""
    notice: reactive[str] = reactive("", repaint=False)

    def redraw(self) -> None:
        self.show(self.line())

    on_mount = watch_gateway_url = watch_key_state = watch_counts = watch_notice = redraw

    def line(self) -> Text:
        text = Text(no_wrap=True, end="")
        wide = self.size.width >= 110
        text.append(" Gateway URL " if wide else " URL ", style="bold reverse")
        text.append(f" {self.gateway_url} ", style="bold")
        counts = self.counts
        if counts:
            missed = counts.get("timed_out", 0) + counts.get("caller_gone", 0) + counts.get("overflow", 0)
            text.append(" held ", style="dim")
            text.append(str(counts.get("pending", 0)), style="bold yellow")
            text.append(" missed ", style="dim")
            text.append(str(missed), style="bold red" if missed else "dim")
        if self.notice:
            text.append(f"  {self.notice}", style="bold red")
        text.append(f"  {self.key_state} " if wide else "  " + self.key_state.split(":")[0] + " ", style="dim")
        if counts:
            text.append(f" received {counts.get('received', 0)}", style="dim")
            text.append(f"  answered {counts.get('answered', 0)}", style="dim")
            if counts.get("timed_out"):
                text.append(f"  timed out {counts['timed_out']}", style="yellow")
            if counts.get("caller_gone"):
                text.append(f"  caller gone {counts['caller_gone']}", style="yellow")
            if counts.get("overflow"):
                text.append(f"  overflow {counts['overflow']}", style="bold red")
            if counts.get("rejected"):
                text.append(f"  rejected {counts['rejected']}", style="red")
        return text

    def on_resize(self) -> None:
        super().on_resize()
        self.show(self.line())  # the labels are shorter below 110 columns
