"""One line: where to point the SL, whether api_keys are checked, and the counts."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    gateway_url: reactive[str] = reactive("starting…")
    key_state: reactive[str] = reactive("")
    counts: reactive[dict[str, int]] = reactive(dict, always_update=True)
    notice: reactive[str] = reactive("")

    def render(self) -> Text:
        text = Text(no_wrap=True, end="")
        text.append(" Gateway URL ", style="bold reverse")
        text.append(f" {self.gateway_url} ", style="bold")
        text.append(f" {self.key_state} ", style="dim")
        counts = self.counts
        if counts:
            text.append(" held ", style="dim")
            text.append(str(counts.get("pending", 0)), style="bold yellow")
            text.append(f"  received {counts.get('received', 0)}", style="dim")
            text.append(f"  answered {counts.get('answered', 0)}", style="dim")
            if counts.get("timed_out"):
                text.append(f"  timed out {counts['timed_out']}", style="yellow")
            if counts.get("caller_gone"):
                text.append(f"  caller gone {counts['caller_gone']}", style="yellow")
            if counts.get("overflow"):
                text.append(f"  overflow {counts['overflow']}", style="bold red")
            if counts.get("rejected"):
                text.append(f"  rejected {counts['rejected']}", style="red")
        if self.notice:
            text.append(f"  {self.notice}", style="bold red")
        return text
