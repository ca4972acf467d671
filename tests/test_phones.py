"""The one phone rule: every written form of a NANP number is one texter."""

from __future__ import annotations

import pytest

from data.phones import normalise_phone, phone_query_digits


@pytest.mark.parametrize("raw", [
    "5557000801", "15557000801", "+1 (555) 700-0801", "1-555-700-0801", " 555.700.0801 ",
    "+15557000801",
])
def test_every_form_of_a_nanp_number_is_one_key(raw):
    assert normalise_phone(raw) == "5557000801"


@pytest.mark.parametrize("raw,key", [
    ("25557000801", "25557000801"),  # 11 digits not starting with 1: kept
    ("+44 20 7946 0958", "442079460958"),  # international: all digits kept
    ("123", "123"),
    ("0015557000801", "0015557000801"),  # 13 digits: not guessed at
    ("  no digits  ", "no digits"),
    ("５５５", "５５５"),  # non-ASCII digits are not digits of a phone number
])
def test_other_lengths_keep_their_digits(raw, key):
    assert normalise_phone(raw) == key


def test_the_rule_is_idempotent():
    for raw in ("15557000801", "+1 (555) 700-0801", "442079460958", "x"):
        once = normalise_phone(raw)
        assert normalise_phone(once) == once


@pytest.mark.parametrize("query,key", [
    ("5557000801", "5557000801"),
    ("+1 (555) 700-0801", "5557000801"),
    ("15557000801", "5557000801"),
    ("700-0801", "7000801"),
])
def test_a_query_in_any_written_form_names_the_phone(query, key):
    assert phone_query_digits(query) == key


@pytest.mark.parametrize("query", ["hello", "block my card 555", "12345", "", "555-CALL-NOW"])
def test_text_is_not_a_phone_query(query):
    assert phone_query_digits(query) is None
