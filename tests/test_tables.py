"""data/tables.py: a typed repository over an ordinary TinyDB table in the data directory."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from data.tables import Repository


@dataclass(frozen=True)
class Template:
    name: str
    body: str
    tags: list[str]


def test_put_get_replace_delete_and_reopen(tmp_path):
    path = tmp_path / "templates.json"
    repo = Repository(path, Template, key="name")
    repo.put(Template("hours", "We open at 9.", ["info"]))
    repo.put(Template("bye", "Thanks!", []))
    repo.put(Template("hours", "We open at 10.", ["info", "new"]))  # same key: replaced
    assert repo.get("hours") == Template("hours", "We open at 10.", ["info", "new"])
    assert len(repo) == 2 and repo.get("nope") is None
    assert repo.delete("bye") and not repo.delete("bye")
    repo.close()
    # a plain TinyDB file that any JSON tool reads
    assert json.loads(path.read_text())["template"] == {"1": {"name": "hours", "body": "We open at 10.", "tags": ["info", "new"]}}
    repo = Repository(path, Template, key="name")
    assert repo.all() == [Template("hours", "We open at 10.", ["info", "new"])]
    repo.close()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_document_that_cannot_be_stored_changes_nothing(tmp_path):
    repo = Repository(tmp_path / "t.json", Template, key="name")
    repo.put(Template("a", "x", []))
    with pytest.raises(TypeError):
        repo.put(Template("b", "y", [object()]))  # type: ignore[list-item]
    assert repo.all() == [Template("a", "x", [])]
    repo.close()


def test_a_damaged_file_is_kept_aside_and_named(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json")
    repo = Repository(path, Template, key="name")
    assert repo.all() == [] and "t.json could not be read" in repo.notices[0]
    assert any(n.startswith("t.json.corrupt-") for n in os.listdir(tmp_path))
    repo.close()


def test_the_model_must_be_a_dataclass_with_the_key():
    with pytest.raises(TypeError):
        Repository(None, dict, key="name")  # type: ignore[arg-type]
