"""Canned replies: placeholders, refusals, and the --templates file."""

from __future__ import annotations

import json

import pytest

from server.sms.templates import (
    DEFAULT_TEMPLATES,
    Template,
    TemplateError,
    fill,
    load_templates_file,
    placeholder_context,
    template_problem,
)

CONTEXT = placeholder_context({"body": "Do you deliver?", "carrier_name": "Verizon", "tag": "T7"},
                              phone="5550000001", contact_tags=("vip", "north"))


def test_placeholders_are_filled_from_the_callback_and_the_contact():
    filled = fill(Template("t", "Hi {phone_number} on {carrier_name}: re '{body}' [{tags}] {tag} {{ok}}",
                           close_session=True, reprocess="menu {tag}", tags=["a b", "c"]), CONTEXT)
    assert filled.reply == "Hi 5550000001 on Verizon: re 'Do you deliver?' [vip, north] T7 {ok}"
    assert (filled.close_session, filled.reprocess, filled.tags) == (True, "menu T7", "a b, c")


@pytest.mark.parametrize("body", ["Hi {name}", "{0}", "{body.upper}", "{body!r}", "{body:>40}", "oops {", "}"])
def test_an_unknown_or_odd_placeholder_is_refused_never_sent_raw(body):
    assert template_problem(Template("t", body)) is not None
    with pytest.raises(TemplateError):
        fill(Template("t", body), CONTEXT)


def test_the_default_templates_are_valid():
    assert all(template_problem(t) is None for t in DEFAULT_TEMPLATES)
    assert len({t.name for t in DEFAULT_TEMPLATES}) == len(DEFAULT_TEMPLATES)


def test_a_templates_file_loads(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"name": "hi", "body": "Hello {phone_number}"},
                                {"name": "vip", "body": "", "tags": "vip, north"},
                                {"name": "out", "body": "Bye", "close_session": True, "reprocess": "MENU"}]))
    loaded = load_templates_file(path)
    assert [t.name for t in loaded] == ["hi", "vip", "out"]
    assert loaded[1].tags == ["vip", "north"] and loaded[2].close_session is True


@pytest.mark.parametrize("content,reason", [
    ("{not json", "not JSON"),
    ('{"name": "x"}', "expected a JSON list"),
    ('[{"name": "ok", "body": "fine"}, {"name": "bad", "body": "Hi {nme}"}]', "entry 2 ('bad'): unknown placeholder {nme}"),
    ('[{"name": "x", "body": "a", "close_session": "yes"}]', "'close_session' must be true or false"),
    ('[{"name": "x", "body": "a", "colour": 1}]', "unknown key 'colour'"),
    ('[{"name": "x", "body": "a"}, {"name": "x", "body": "b"}]', "used twice"),
    ('[{"name": "x", "body": "a", "tags": ["bad!"]}]', "tag 'bad!'"),
    ('["x"]', "entry 1: expected an object"),
])
def test_a_broken_templates_file_names_the_file_and_the_entry(tmp_path, content, reason):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(TemplateError) as caught:
        load_templates_file(path)
    assert str(path) in str(caught.value) and reason in str(caught.value)
    assert "\n" not in str(caught.value)
