"""What `simulate` and `serve-sl` print: one line per callback (what went, what came back,
the verdict, with violations and warnings apart) and a summary. Everything the peer sent
is neutralised before it is printed."""

from __future__ import annotations

import re
from collections import Counter
from typing import TextIO

from server.sms.sanitize import neutralise_line, truncate
from server.simulator.judge import Verdict
from server.simulator.records import Exchange

__all__ = ["Reporter"]

_REASON_END = re.compile(r": | \(|, Location")


def _what(exchange: Exchange) -> str:
    fields = exchange.fields
    kind = exchange.type
    if kind == "delivery_report":
        return f"{fields.get('message_id', '?')} status={fields.get('status', '?')} final={fields.get('final', '?')}"
    if kind == "session_closed":
        return fields.get("phone_numbers", "?")
    line = fields.get("phone_number", "?")
    if kind == "incoming_message":
        line += f" {truncate(fields.get('body', ''), 40)!r}"
        flags = [name for name in ("auto_subscribe", "auto_responded") if name in fields]
        if flags:
            line += " " + " ".join(f"{name}={fields[name]}" for name in flags)
    return line


def _effects(verdict: Verdict) -> str:
    parts = []
    if verdict.reply:
        parts.append("reply")
    if verdict.close_session:
        parts.append("close_session")
    if verdict.reprocess:
        parts.append(f"reprocess {truncate(verdict.reprocess, 30)!r}")
    if verdict.tags:
        parts.append("tags " + ",".join(verdict.tags))
    return f" [{'; '.join(parts)}]" if parts else ""


def _reason(problem: str) -> str:
    """The kind of a problem, for the summary: its text up to the details."""
    return _REASON_END.split(problem, maxsplit=1)[0][:60]


class Reporter:
    """Prints one line per callback sent and counts them: ok, with warnings only, with
    violations (a scenario's failed expectations are violations too). `failed` says
    whether the run fails: on a violation, or with `strict` on a warning too."""

    def __init__(self, out: TextIO, *, strict: bool = False) -> None:
        self.out = out
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.warning_reasons: Counter[str] = Counter()

    def __call__(self, exchange: Exchange, extra: list[str] | None = None) -> None:
        if not exchange.sent:
            return
        violations = list(exchange.verdict.violations) + (extra or [])
        warnings = list(exchange.verdict.warnings)
        self.counts["sent"] += 1
        self.types[exchange.type] += 1
        self.counts["violations" if violations else "warnings" if warnings else "ok"] += 1
        self.reasons.update(_reason(problem) for problem in violations)
        self.warning_reasons.update(_reason(warning) for warning in warnings)
        if exchange.status:
            answer = f"{exchange.status} {truncate(exchange.body, 60)!r}"
        else:
            answer = "no answer"
        verdict = "VIOLATION: " + "; ".join(violations) if violations else "ok" + _effects(exchange.verdict)
        if warnings:
            verdict += "  WARNING: " + "; ".join(warnings)
        line = f"→ {exchange.type} {_what(exchange)}  ← {answer} ({exchange.elapsed_ms:.0f} ms)  {verdict}"
        self.out.write(neutralise_line(line) + "\n")
        self.out.flush()

    @property
    def failed(self) -> bool:
        return bool(self.counts["violations"] or (self.strict and self.counts["warnings"]))

    def summary(self) -> str:
        line = (f"summary: {self.counts['sent']} callbacks, {self.counts['ok']} ok, "
                f"{self.counts['violations']} with contract violations, "
                f"{self.counts['warnings']} with warnings only")
        if self.strict:
            line += " (--strict: warnings fail)"
        if self.types:
            line += "; sent " + ", ".join(f"{kind} {n}" for kind, n in sorted(self.types.items()))
        if self.reasons:
            line += "; violations: " + ", ".join(f"{reason} ×{n}" for reason, n in self.reasons.most_common(5))
        if self.warning_reasons:
            line += "; warnings: " + ", ".join(
                f"{reason} ×{n}" for reason, n in self.warning_reasons.most_common(5))
        return neutralise_line(line)
