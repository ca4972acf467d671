"""Reading callback fields from every body shape the gateway accepts."""

from __future__ import annotations

import pytest

from server.forms import FormError, read_fields

FORM = "application/x-www-form-urlencoded"


def test_urlencoded_with_utf8():
    fields, notes = read_fields(query_string="", content_type=FORM, body="type=incoming_message&body=h%C3%A9llo+there".encode())
    assert fields == {"type": "incoming_message", "body": "héllo there"}
    assert notes == []


def test_query_string_and_body_merge_body_wins():
    fields, notes = read_fields(query_string="type=x&api_key=q", content_type=FORM, body=b"api_key=b&body=1")
    assert fields == {"type": "x", "api_key": "b", "body": "1"}
    assert notes == ["field 'api_key' was sent more than once; the last value was used"]


def test_json_object_values_become_strings():
    fields, _ = read_fields(query_string="", content_type="application/json",
                            body=b'{"type":"delivery_report","final":true,"status":1,"x":null}')
    assert fields == {"type": "delivery_report", "final": "true", "status": "1", "x": ""}


def test_multipart():
    body = (b'--B\r\nContent-Disposition: form-data; name="type"\r\n\r\nincoming_message\r\n'
            b'--B\r\nContent-Disposition: form-data; name="body"\r\n\r\n\xc3\xa9t\xc3\xa9\r\n--B--\r\n')
    fields, _ = read_fields(query_string="", content_type="multipart/form-data; boundary=B", body=body)
    assert fields == {"type": "incoming_message", "body": "été"}


def test_declared_charset_is_honoured():
    fields, _ = read_fields(query_string="", content_type=FORM + "; charset=latin-1", body=b"body=%E9t%E9")
    assert fields["body"] == "été"


@pytest.mark.parametrize(
    "content_type,body,reason",
    [
        (FORM, b"body=%FF%FE", "not valid utf-8"),
        (FORM + "; charset=nope", b"a=1", "unknown charset"),
        # Python codecs that are no charset on the wire (unicode_escape reads \\N{...} etc.)
        (FORM + "; charset=unicode_escape", b"body=%5Cx41", "unknown charset"),
        (FORM + "; charset=raw-unicode-escape", b"body=x", "unknown charset"),
        (FORM + "; charset=idna", b"body=x", "unknown charset"),
        ("multipart/form-data; boundary=B; charset=undefined",
         b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--B--\r\n', "unknown charset"),
        ("application/json", b"{not json", "not valid JSON"),
        ("application/json", b"[1,2]", "must be an object"),
        ("application/json", b'{"a": {"b": 1}}', "must be a string"),
        ("application/json", b"\xff\xfe", "not valid utf-8"),
        ("multipart/form-data; boundary=B", b"garbage with no parts", "multipart"),
        ("image/png", b"\x89PNG", "unsupported Content-Type"),
    ],
)
def test_bad_bodies_get_a_one_line_reason(content_type, body, reason):
    with pytest.raises(FormError) as info:
        read_fields(query_string="", content_type=content_type, body=body)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def test_too_many_fields():
    body = "&".join(f"f{i}=1" for i in range(50)).encode()
    with pytest.raises(FormError, match="too many fields"):
        read_fields(query_string="", content_type=FORM, body=body, max_fields=20)


from hypothesis import given, settings, strategies as st  # noqa: E402
from urllib.parse import parse_qsl  # noqa: E402

from server.forms import _pairs_plain  # noqa: E402


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("ab=&;x1 _-.")), max_size=40))
def test_the_plain_fast_path_matches_parse_qsl(text):
    assert _pairs_plain(text, 10**6) == parse_qsl(text, keep_blank_values=True)


# -- the plain split (no percent-escapes) must give what parse_qsl gives ------------------

from server.forms import _merge, _pairs_urlencoded  # noqa: E402

_PLAIN = st.text(alphabet="ab_=&1", max_size=24)


@settings(max_examples=400, deadline=None)
@given(_PLAIN)
def test_plain_bodies_read_as_parse_qsl_reads_them(text):
    body = text.encode()
    try:
        fast = read_fields(query_string="", content_type=FORM, body=body, max_fields=5)
    except FormError as exc:
        fast = ("error", str(exc))
    # the general path: parse_qsl, as for any percent-encoded body
    try:
        pairs = _pairs_urlencoded(text, "utf-8", "urlencoded body", 5)
        general = ("error", "too many") if len(pairs) > 5 else _merge(pairs)
    except FormError:
        general = ("error", "too many")
    if fast[0] == "error":
        assert general[0] == "error" and "too many fields" in fast[1]
    elif general[0] == "error":
        # parse_qsl counts separators, not fields: '&&&&&' is "6 fields" to it, none to us
        assert text.count("&") + 1 > 5
        assert fast == _merge(_pairs_plain(text, 5))
    else:
        assert fast == general
        assert fast == _merge(_pairs_plain(text, 5))


def test_repeated_keys_are_reported_and_names_shared():
    fields, notes = read_fields(query_string="", content_type=FORM, body=b"a=1&b=2&a=3&a=3", max_fields=10)
    assert fields == {"a": "3", "b": "2"}
    assert notes == ["field 'a' was sent more than once; the last value was used"]
    again, _ = read_fields(query_string="", content_type=FORM + "; charset=UTF-8", body=b"b=9", max_fields=10)
    assert next(iter(again)) is next(k for k in fields if k == "b")  # one string object per name
