"""Scenario files: exact callback sequences with expected answers, for QA of a gateway.

A scenario is a JSON list of steps::

    [{"send": {"type": "incoming_message", "phone_number": "5551230001", "body": "HELLO",
               "sent_at": "2026-11-27T10:00:00Z"},
      "expect": {"status": 200, "body": "Hi!"}},
     {"wait": 0.5},
     {"send": {"type": "subscription_created", "phone_number": "5551230001"},
      "expect": {"tags": ["vip"]}}]

`expect` may hold `status`, `body` (exact text), `json` (an object the body must equal),
`empty: true`, or `tags` (a list). A step without `expect` only checks the contract.
Other keys of a step (e.g. "note") are comments. The simulator sends exactly the steps'
callbacks: replies are not followed by delivery reports, reprocess texts are not sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


EXPECT_KEYS = frozenset({"status", "body", "json", "empty", "tags"})


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Step:
    send: dict[str, str] | None
    wait: float
    expect: dict[str, Any]


def load_scenario(path: Path) -> list[Step]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ScenarioError(f"scenario {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ScenarioError(f"scenario {path} must be a JSON list of steps")
    steps = []
    for n, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not ({"send", "wait"} & set(item)):
            raise ScenarioError(f"step {n}: expected an object with 'send' and/or 'wait'")
        send = item.get("send")
        if send is not None:
            if not isinstance(send, dict) or "type" not in send:
                raise ScenarioError(f"step {n}: 'send' must be an object with a 'type'")
            send = {str(k): str(v) for k, v in send.items()}
        wait = item.get("wait", 0)
        if not isinstance(wait, (int, float)) or wait < 0:
            raise ScenarioError(f"step {n}: 'wait' must be a number of seconds >= 0")
        expect = item.get("expect", {})
        if not isinstance(expect, dict):
            raise ScenarioError(f"step {n}: 'expect' must be an object")
        unknown = sorted(set(expect) - EXPECT_KEYS)
        if unknown:
            raise ScenarioError(f"step {n}: unknown expectation(s) {', '.join(unknown)}"
                                f" (use {', '.join(sorted(EXPECT_KEYS))})")
        if "tags" in expect and not isinstance(expect["tags"], list):
            raise ScenarioError(f"step {n}: 'tags' must be a list of strings")
        if "status" in expect and not isinstance(expect["status"], int):
            raise ScenarioError(f"step {n}: 'status' must be an integer")
        steps.append(Step(send, float(wait), expect))
    return steps


def check_expectation(expect: dict[str, Any], status: int, body: str) -> list[str]:
    """The ways a response differs from what the step expected (one line each)."""
    problems = []
    if "status" in expect and status != expect["status"]:
        problems.append(f"expected HTTP {expect['status']}, got {status}")
    if "body" in expect and body != expect["body"]:
        problems.append(f"expected body {expect['body']!r}, got {body[:80]!r}")
    if expect.get("empty") and body != "":
        problems.append(f"expected an empty body, got {body[:80]!r}")
    if "json" in expect:
        try:
            if json.loads(body) != expect["json"]:
                problems.append(f"expected JSON {json.dumps(expect['json'])}, got {body[:80]!r}")
        except ValueError:
            problems.append(f"expected JSON, got {body[:80]!r}")
    if "tags" in expect:
        tags = [tag.strip() for tag in body.split(",") if tag.strip()]
        if tags != list(expect["tags"]):
            problems.append(f"expected tags {expect['tags']}, got {tags}")
    return problems
