"""The callback contract: parsing every type, booleans, statuses, and the one encoder."""

from __future__ import annotations

import json

import pytest

from server.sms.contract import (
    FALSE_WORDS,
    HELD_TYPES,
    TRUE_WORDS,
    CallbackType,
    ContractError,
    Decision,
    encode_response,
    fallback_decision,
    parse_bool,
    parse_callback,
    parse_tags,
)
from server.sms.dates import parse_sl_date

KEY = {"api_key": "k1"}

WELL_FORMED = {
    "incoming_message": {"phone_number": "5551234567", "body": "hi", "sent_at": "2007-09-02T00:30:44Z",
                         "auto_subscribe": "1", "auto_responded": "0", "carrier_id": "7", "carrier_name": "Verizon"},
    "delivery_report": {"message_id": "5554055", "final": "1", "status": "1"},
    "session_closed": {"phone_numbers": "5551234567,5557654321"},
    "subscription_created": {"phone_number": "5551234567"},
    "subscription_canceled": {"phone_number": "5551234567"},
    "phone_blacklisted": {"phone_number": "5551234567"},
    "phone_unblacklisted": {"phone_number": "5551234567"},
    "auto_reply_loop": {"phone_number": "5551234567"},
}


def test_all_eight_types_are_known():
    assert {t.value for t in CallbackType} == set(WELL_FORMED)
    assert HELD_TYPES == {"incoming_message", "subscription_created"}


@pytest.mark.parametrize("kind", sorted(WELL_FORMED))
def test_well_formed_callbacks_have_no_warnings(kind):
    callback = parse_callback({"type": kind, **KEY, **WELL_FORMED[kind]})
    assert callback.type == kind
    assert callback.warnings == ()
    assert callback.held == (kind in HELD_TYPES)
    if kind == "session_closed":
        assert callback.phones == ("5551234567", "5557654321")
    elif kind != "delivery_report":
        assert callback.phones == ("5551234567",)


@pytest.mark.parametrize("kind", sorted(WELL_FORMED))
def test_missing_required_fields_are_warnings_not_errors(kind):
    callback = parse_callback({"type": kind, **KEY})
    assert callback.warnings, "a callback missing its fields must carry warnings"
    assert all("missing required field" in w for w in callback.warnings)


def test_incoming_message_parsed_values():
    callback = parse_callback({"type": "incoming_message", **KEY, **WELL_FORMED["incoming_message"]})
    assert callback.parsed["auto_subscribe"] is True
    assert callback.parsed["auto_responded"] is False
    assert callback.parsed["sent_at"] == "2007-09-02T00:30:44+00:00"
    assert callback.parsed["sent_at_raw"] == "2007-09-02T00:30:44Z"
    assert callback.parsed["carrier_name"] == "Verizon"


def test_incoming_message_thread_tag_is_kept_raw():
    fields = {"type": "incoming_message", **KEY, **WELL_FORMED["incoming_message"]}
    assert parse_callback(fields).parsed["tag"] == ""  # absent: empty, no warning
    callback = parse_callback({**fields, "tag": " Spring Promo-2 "})
    assert callback.parsed["tag"] == " Spring Promo-2 " and callback.warnings == ()
    assert "tag" not in parse_callback({"type": "subscription_created", **KEY, "phone_number": "5551234567",
                                        "tag": "x"}).parsed  # only incoming_message carries it


@pytest.mark.parametrize("written", ["5557000801", "15557000801", "+1 (555) 700-0801", "+15557000801"])
@pytest.mark.parametrize("kind", sorted(set(WELL_FORMED) - {"delivery_report", "session_closed"}))
def test_every_written_form_of_a_phone_is_one_texter(kind, written):
    callback = parse_callback({"type": kind, **KEY, **WELL_FORMED[kind], "phone_number": written})
    assert callback.phones == ("5557000801",) and callback.phone == "5557000801"
    assert callback.parsed["phone_number"] == written  # the raw value is kept
    assert callback.warnings == ()


def test_session_closed_lists_each_texter_once_whatever_the_form():
    callback = parse_callback({"type": "session_closed", **KEY,
                               "phone_numbers": "5557000801,+1 (555) 700-0801,15557000801,5551234567"})
    assert callback.phones == ("5557000801", "5551234567")
    assert callback.warnings == ()


@pytest.mark.parametrize("word", sorted(TRUE_WORDS) + ["TRUE", "Yes", "T", "Y"])
def test_true_spellings(word):
    assert parse_bool(word) is True
    callback = parse_callback({"type": "delivery_report", **KEY, "message_id": "1", "status": "1", "final": word})
    assert callback.parsed["final"] is True and callback.warnings == ()


@pytest.mark.parametrize("word", sorted(FALSE_WORDS) + ["FALSE", "No", "F", "N"])
def test_false_spellings(word):
    assert parse_bool(word) is False


@pytest.mark.parametrize("word", ["2", "on", "off", "", "truthy", "-1"])
def test_bad_booleans_warn_and_parse_to_none(word):
    assert parse_bool(word) is None
    callback = parse_callback({"type": "incoming_message", **KEY, **WELL_FORMED["incoming_message"], "auto_subscribe": word})
    assert callback.parsed["auto_subscribe"] is None
    assert any("auto_subscribe" in w and "not a boolean" in w for w in callback.warnings)


@pytest.mark.parametrize("code,name", [("0", "pending"), ("1", "delivered"), ("2", "failed"), ("4", "queued")])
def test_delivery_status_codes_are_named(code, name):
    callback = parse_callback({"type": "delivery_report", **KEY, "message_id": "9", "final": "0", "status": code})
    assert callback.parsed["status"] == int(code)
    assert callback.parsed["status_name"] == name
    assert callback.warnings == ()


@pytest.mark.parametrize("code", ["3", "5", "x", "-1"])
def test_unknown_delivery_status_warns(code):
    callback = parse_callback({"type": "delivery_report", **KEY, "message_id": "9", "final": "0", "status": code})
    assert callback.parsed["status_name"] == "unknown"
    assert any("status" in w for w in callback.warnings)


def test_unknown_type_is_accepted_with_a_warning():
    callback = parse_callback({"type": "mystery", **KEY, "phone_number": "5551234567"})
    assert not callback.held
    assert callback.warnings == ("unknown callback type 'mystery'",)
    assert callback.phones == ("5551234567",)


@pytest.mark.parametrize("fields", [{}, {"type": ""}, {"type": "   "}])
def test_missing_type_is_a_contract_error(fields):
    with pytest.raises(ContractError, match="missing 'type'"):
        parse_callback(fields)


def test_missing_api_key_warns():
    callback = parse_callback({"type": "auto_reply_loop", "phone_number": "5551234567"})
    assert "missing 'api_key' field" in callback.warnings


def test_phone_numbers_split_and_bad_numbers_warn():
    callback = parse_callback({"type": "session_closed", **KEY, "phone_numbers": " 5551234567 , 123,,+1 (555) 765-4321"})
    assert callback.parsed["phone_numbers"] == ["5551234567", "123", "+1 (555) 765-4321"]
    assert callback.phones == ("5551234567", "123", "5557654321")
    assert any("'123'" in w for w in callback.warnings)


def test_a_phone_number_with_characters_no_number_has_warns():
    hostile = parse_callback({"type": "incoming_message", **KEY, "phone_number": "555\x1b[7m1234567", "body": "x"})
    assert any("holds characters no phone number has" in w for w in hostile.warnings)
    for written in ("5551234567", "+1 (555) 123-4567", "1.555.123.4567"):
        plain = parse_callback({"type": "incoming_message", **KEY, "phone_number": written, "body": "x"})
        assert not any("phone_number" in w for w in plain.warnings), written


@pytest.mark.parametrize(
    "raw",
    ["16:30", "Aug 31", "7/31", "2/9/2007", "2007-02-09", "02-09-2007 12:30:44 AM",
     "2007-09-02T00:30:44Z", "02-09-2007 12:30:44 PM EST", "2007-09-02T12:30:44-0500",
     "Wednesday, January 10, 2001", "Tue, 09 Feb 2007 12:30:44 +0000"],
)
def test_documented_dates_parse(raw):
    assert parse_sl_date(raw) is not None


def test_dates_keep_zone_and_raw():
    assert parse_sl_date("2007-09-02T12:30:44-0500") == "2007-09-02T17:30:44+00:00"
    assert parse_sl_date("02-09-2007 12:30:44 PM EST") == "2007-02-09T17:30:44+00:00"
    callback = parse_callback({"type": "incoming_message", **KEY, "phone_number": "5551234567", "body": "x", "sent_at": "yesterday-ish"})
    assert callback.parsed["sent_at"] is None and callback.parsed["sent_at_raw"] == "yesterday-ish"
    assert any("sent_at" in w for w in callback.warnings)


# ------------------------------------------------------------------- encoding


IM = "incoming_message"


def test_nothing_is_an_empty_body():
    encoded = encode_response(IM, Decision())
    assert encoded.body == "" and encoded.status == 200


def test_only_a_reply_is_plain_text():
    encoded = encode_response(IM, Decision(reply="Thanks, see you at 5"))
    assert encoded.body == "Thanks, see you at 5"
    assert encoded.content_type == "text/plain"


@pytest.mark.parametrize("reply", ['{"a":1}', "[1,2]", "  {not json", "\n[x"])
def test_a_reply_that_looks_like_json_is_sent_as_json(reply):
    encoded = encode_response(IM, Decision(reply=reply))
    assert encoded.content_type == "application/json"
    assert json.loads(encoded.body) == {"body": reply}


@pytest.mark.parametrize(
    "decision,expected",
    [
        (Decision(close_session=True), {"close_session": True}),
        (Decision(reprocess="another keyword"), {"reprocess": "another keyword"}),
        (Decision(reply="bye", close_session=True), {"body": "bye", "close_session": True}),
        (Decision(reply="moving", reprocess="kw"), {"body": "moving", "reprocess": "kw"}),
        (Decision(close_session=True, reprocess="kw"), {"close_session": True, "reprocess": "kw"}),
        (Decision(reply="Switching to another app", close_session=True, reprocess="another keyword"),
         {"body": "Switching to another app", "close_session": True, "reprocess": "another keyword"}),
    ],
)
def test_json_holds_only_the_keys_in_use(decision, expected):
    encoded = encode_response(IM, decision)
    assert encoded.content_type == "application/json"
    assert json.loads(encoded.body) == expected


def test_json_escapes_quotes_and_keeps_unicode():
    encoded = encode_response(IM, Decision(reply='say "hi" \\ ok 😀', close_session=True))
    assert json.loads(encoded.body)["body"] == 'say "hi" \\ ok 😀'
    assert "😀" in encoded.body


def test_subscription_tags_are_comma_separated_plain_text():
    assert encode_response("subscription_created", Decision(tags=("vip", "event 2026"))).body == "vip,event 2026"
    assert encode_response("subscription_created", Decision()).body == ""


def test_fallback_goes_through_the_same_encoder():
    assert encode_response(IM, fallback_decision(IM, "We'll get back to you")).body == "We'll get back to you"
    assert encode_response(IM, fallback_decision(IM, "")).body == ""
    assert encode_response("subscription_created", fallback_decision("subscription_created", "text")).body == ""


def test_other_types_are_answered_empty():
    for kind in WELL_FORMED:
        if kind not in HELD_TYPES:
            assert encode_response(kind, Decision(reply="x", close_session=True)).body == ""


@pytest.mark.parametrize(
    "text,tags",
    [("vip", ("vip",)), ("vip, event-2026 ,early_bird", ("vip", "event-2026", "early_bird")),
     ("", ()), (" , ", ()), ("a,a", ("a",)), ("two words", ("two words",))],
)
def test_tags_parse(text, tags):
    assert parse_tags(text) == (tags, None)


@pytest.mark.parametrize("text,bad", [("vip!", "!"), ("a;b", ";"), ("ünï", "ü"), ("x.y", ".")])
def test_bad_tag_characters_are_refused_with_a_reason(text, bad):
    tags, error = parse_tags(text)
    assert tags == ()
    assert error is not None and repr(bad) in error and "letters, digits" in error
