"""Property tests for the untrusted edge: the form reader, the contract parser and the real
gateway (real HistoryStore on disk) under random bodies, content types and query strings;
plus slow and oversized clients on a raw socket."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from data.store import HistoryStore
from server.broker import Broker
from server.config import AppKey, GatewayConfig
from server.sms.contract import Callback, ContractError, parse_callback
from server.gateway.forms import FormError, read_fields
from server.frontends.headless import FallbackAnswerer


# ------------------------------------------------------------------------- strategies

CHARSETS = [
    "utf-8", "UTF-8", "latin-1", "iso-8859-15", "cp1252", "ascii", "utf-16", "utf-16-le",
    "utf-32", "shift_jis", "euc-jp", "koi8-r", "gb18030", "utf-7", "utf-8-sig", "idna",
    "punycode", "unicode_escape", "raw_unicode_escape", "undefined",
    # exist in `codecs` but are not text encodings
    "rot13", "base64", "hex", "zlib", "bz2", "uu", "quopri",
    # do not exist / malformed
    "no-such-charset", "x-\u00e9", "", '"utf-8"', "utf-8\x00", "\x7f",
]
TEXT_CHARSETS = ["utf-8", "latin-1", "cp1252", "utf-16", "shift_jis", "koi8-r", "gb18030"]
MIMES = [
    "", "application/x-www-form-urlencoded", "text/plain", "application/json",
    "application/vnd.sl+json", "multipart/form-data", "multipart/mixed", "text/html",
    "application/octet-stream", "x", "/", "a/b/c",
]
KEYS = ["type", "api_key", "phone_number", "body", "sent_at", "message_id", "final", "status",
        "phone_numbers", "auto_subscribe", "carrier_id", "x"]
TYPES = ["incoming_message", "delivery_report", "session_closed", "subscription_created",
         "subscription_canceled", "phone_blacklisted", "phone_unblacklisted", "auto_reply_loop",
         "", " ", "INCOMING_MESSAGE", "nope"]

# Header-safe text: printable Latin-1 (no CR/LF/NUL), what an HTTP client can put in a header.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60)
field_key = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
field_value = st.one_of(st.sampled_from(TYPES), st.text(max_size=40), st.just("key-1"))
pair_list = st.lists(st.tuples(field_key, field_value), max_size=12)


@st.composite
def content_types(draw) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(header_text)
    mime = draw(st.sampled_from(MIMES))
    params = []
    if draw(st.booleans()):
        params.append(f"charset={draw(st.sampled_from(CHARSETS))}")
    if mime.startswith("multipart") and draw(st.integers(0, 3)):
        boundary = draw(st.sampled_from(["B", "xyz", '"quoted b"', "", "--", draw(header_text)]))
        params.append(f"boundary={boundary}")
    if draw(st.integers(0, 5)) == 0:
        params.append(draw(header_text))
    return "; ".join([mime, *params]) if params else mime


def _encode(text: str, charset: str) -> bytes:
    return text.encode(charset, errors="replace")


@st.composite
def urlencoded_bodies(draw) -> bytes:
    """Well-formed, percent-encoded in random charsets (mixed within one body), raw
    non-ASCII bytes, invalid %XX escapes and repeated keys."""
    parts = []
    for key, value in draw(pair_list):
        charset = draw(st.sampled_from(TEXT_CHARSETS))
        how = draw(st.integers(0, 3))
        if how == 0:
            parts.append(quote_from_bytes(_encode(key, charset)).encode() + b"=" + quote_from_bytes(_encode(value, charset)).encode())
        elif how == 1:  # raw, not percent-encoded
            parts.append(_encode(key, charset) + b"=" + _encode(value, charset))
        elif how == 2:  # random escapes (often invalid UTF-8)
            parts.append(key.encode("utf-8", "replace") + b"=" + b"".join(b"%%%02X" % b for b in draw(st.binary(max_size=8))))
        else:
            parts.append(draw(st.binary(max_size=20)))
    return b"&".join(parts)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def json_bodies(draw) -> bytes:
    value = draw(st.one_of(st.dictionaries(field_key, json_values | field_value, max_size=8), json_values))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)
    if draw(st.integers(0, 4)) == 0:  # lone surrogate escapes
        text = text.replace("}", ', "body": "\\ud800x"}', 1)
    return _encode(text, draw(st.sampled_from(TEXT_CHARSETS)))


@st.composite
def multipart_bodies(draw) -> bytes:
    boundary = draw(st.sampled_from([b"B", b"xyz", b"other", b""]))
    chunks = []
    for key, value in draw(pair_list):
        headers = [b'Content-Disposition: form-data; name="' + key.encode("utf-8", "replace") + b'"']
        if draw(st.booleans()):
            headers = [draw(st.binary(max_size=30))]
        if draw(st.booleans()):
            headers.append(b"Content-Type: text/plain; charset=" + draw(st.sampled_from(CHARSETS)).encode("utf-8", "replace"))
        if draw(st.integers(0, 3)) == 0:
            headers.append(b"Content-Transfer-Encoding: " + draw(st.sampled_from([b"base64", b"quoted-printable", b"8bit", b"x"])))
        payload = draw(st.one_of(st.binary(max_size=30), st.builds(_encode, st.just(value), st.sampled_from(TEXT_CHARSETS))))
        chunks.append(b"--" + boundary + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + payload + b"\r\n")
    tail = draw(st.sampled_from([b"--" + boundary + b"--\r\n", b"", b"--" + boundary]))
    return b"".join(chunks) + tail


bodies = st.one_of(st.binary(max_size=300), urlencoded_bodies(), json_bodies(), multipart_bodies())


@st.composite
def query_strings(draw) -> str:
    """Raw (still percent-encoded) ASCII query strings, as they appear on the request line."""
    parts = []
    for key, value in draw(st.lists(st.tuples(field_key, field_value), max_size=5)):
        parts.append(quote_from_bytes(key.encode("utf-8", "surrogatepass")) + "=" + quote_from_bytes(_encode(value, draw(st.sampled_from(TEXT_CHARSETS)))))
    if draw(st.booleans()):
        parts.append("".join("%%%02X" % b for b in draw(st.binary(max_size=6))))
    if draw(st.booleans()):
        parts.append(draw(st.text(st.sampled_from("abc=&+;%/?"), max_size=10)))
    return "&".join(parts)


def _one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text.strip() and "\r" not in text


# ------------------------------------------------------------------------- read_fields


def _check_read_fields(**kwargs) -> None:
    try:
        fields, notes = read_fields(**kwargs)
    except FormError as exc:
        assert _one_line(str(exc)), repr(str(exc))
        return
    assert isinstance(fields, dict)
    for key, value in fields.items():
        assert type(key) is str and type(value) is str
        key.encode("utf-8")  # no lone surrogates reach the store
        value.encode("utf-8")
    assert isinstance(notes, list)
    for note in notes:
        assert type(note) is str and _one_line(note)


@settings(max_examples=600, deadline=None)
@given(body=bodies, content_type=content_types(), query=st.one_of(st.just(""), query_strings(), st.text(max_size=20)))
def test_read_fields_returns_strings_or_form_error(body, content_type, query):
    _check_read_fields(query_string=query, content_type=content_type, body=body)


@settings(max_examples=200, deadline=None)
@given(body=multipart_bodies(), boundary=st.one_of(st.none(), st.sampled_from(["B", "xyz"]), header_text),
       charset=st.one_of(st.none(), st.sampled_from(CHARSETS)))
def test_read_fields_multipart_any_boundary(body, boundary, charset):
    content_type = "multipart/form-data"
    if boundary is not None:
        content_type += f'; boundary="{boundary}"'
    if charset is not None:
        content_type += f"; charset={charset}"
    _check_read_fields(query_string="", content_type=content_type, body=body)


def test_read_fields_non_text_codecs_and_nul_charset_are_form_errors():
    for charset in ["rot13", "base64", "hex", "zlib", "undefined", "utf-8\x00"]:
        for mime in ["application/x-www-form-urlencoded", "application/json"]:
            with pytest.raises(FormError):
                read_fields(query_string="", content_type=f"{mime}; charset={charset}", body=b"a=b")
    part = (b'--B\r\nContent-Disposition: form-data; name="a"\r\n'
            b"Content-Type: text/plain; charset=zlib\r\n\r\nxx\r\n--B--\r\n")
    with pytest.raises(FormError):
        read_fields(query_string="", content_type="multipart/form-data; boundary=B", body=part)


def test_read_fields_lone_surrogates_are_form_errors():
    with pytest.raises(FormError, match="surrogate"):
        read_fields(query_string="", content_type="application/json", body=b'{"body": "\\ud800"}')
    with pytest.raises(FormError, match="surrogate"):
        read_fields(query_string="", content_type="text/plain; charset=utf-7", body=b"body=+2AA-")  # U+D800
    fields, _ = read_fields(query_string="", content_type="application/json", body=b'{"body": "\\ud83d\\ude00"}')
    assert fields["body"] == "\U0001F600"


def test_read_fields_huge_field_count_and_huge_single_field():
    many = b"&".join(b"k%d=v" % i for i in range(50_000))
    with pytest.raises(FormError, match="too many fields"):
        read_fields(query_string="", content_type="", body=many, max_fields=1000)
    with pytest.raises(FormError, match="too many fields"):
        read_fields(query_string="&".join(f"q{i}=1" for i in range(600)), content_type="",
                    body=b"&".join(b"k%d=v" % i for i in range(600)), max_fields=1000)
    repeated = b"&".join(b"type=%d" % i for i in range(900))
    fields, notes = read_fields(query_string="", content_type="", body=repeated)
    assert fields == {"type": "899"} and len(notes) == 1
    huge = b"body=" + b"x" * 5_000_000
    fields, _ = read_fields(query_string="", content_type="", body=huge)
    assert len(fields["body"]) == 5_000_000
    big_json = json.dumps({f"k{i}": "v" for i in range(5000)}).encode()
    with pytest.raises(FormError, match="too many fields"):
        read_fields(query_string="", content_type="application/json", body=big_json)


# ------------------------------------------------------------------------- parse_callback

str_dicts = st.dictionaries(
    st.one_of(st.sampled_from(KEYS), st.text(max_size=10)),
    st.one_of(st.sampled_from(TYPES), st.sampled_from(["1", "0", "yes", "T", "nah", "4", "-1", "99999999999999999999",
                                                       "5551234567", "555,+1 555 123 4567,,", "16:30", "Aug 31",
                                                       "2007-09-02T12:30:44-0500", "Wednesday, January 10, 2001"]),
              st.text(max_size=30)),
    max_size=10,
)


@settings(max_examples=500, deadline=None)
@given(fields=str_dicts)
def test_parse_callback_on_random_fields(fields):
    try:
        callback = parse_callback(fields)
    except ContractError as exc:
        assert not fields.get("type", "").strip()
        assert _one_line(str(exc))
        return
    assert isinstance(callback, Callback)
    assert fields.get("type", "").strip()
    assert dict(callback.fields) == fields
    for warning in callback.warnings:
        assert type(warning) is str and _one_line(warning), repr(warning)
    json.dumps(callback.parsed, allow_nan=False)
    assert all(type(phone) is str for phone in callback.phones)


# ------------------------------------------------------------------------- the real gateway

GATEWAY = GatewayConfig(api_keys=(AppKey("test", "key-1"),), reply_timeout=5.0, fallback="auto")


@pytest.fixture
def gateway_store(tmp_path: Path):
    store = HistoryStore.open(tmp_path / "fuzz-history")
    yield store
    store.close()


@pytest.fixture
async def fuzz_client(aiohttp_client, gateway_server, gateway_store):
    broker = Broker()
    broker.subscribe(FallbackAnswerer(broker, GATEWAY.fallback))  # held types get answered at once
    return await aiohttp_client(await gateway_server(GATEWAY, broker, gateway_store))


FORM = "application/x-www-form-urlencoded"
NO_CONTROLS = {c: None for c in [*range(0x20), 0x7F] if c != 0x09}
WELL_FORMED = {"type": "delivery_report", "api_key": "key-1", "message_id": "probe", "final": "1", "status": "1"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types(), query=query_strings(),
       fields=st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), field_value, max_size=6)),
       encoding=st.sampled_from([None, None, None, "gzip", "deflate", "br", "identity", "x-nope"]),
       compress=st.booleans())
async def test_gateway_never_500_and_keeps_working(fuzz_client, body, content_type, query, fields, encoding, compress):
    if fields is not None:  # a mostly-valid form body, so 200/403 paths are exercised too
        body = "&".join(f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode('utf-8', 'replace'))}"
                        for k, v in fields.items()).encode()
    url = URL("/?" + query, encoded=True) if query else URL("/")
    headers = {"Content-Type": content_type.translate(NO_CONTROLS)}  # the client refuses controls
    if encoding is not None:
        headers["Content-Encoding"] = encoding
        if compress and encoding == "gzip":
            body = gzip.compress(body)
        elif compress and encoding == "deflate":
            body = zlib.compress(body)
    response = await fuzz_client.post(url, data=body, headers=headers)
    text = await response.text(errors="replace")
    assert response.status in {200, 400, 403, 413, 415}, (response.status, text)
    if response.status != 200:
        assert _one_line(text), repr(text)
    ok = await fuzz_client.post("/", data=WELL_FORMED)
    assert ok.status == 200, await ok.text()


async def test_gateway_percent_encoded_utf8_query_string(fuzz_client, gateway_store):
    """Query-string fields are read from the raw (still percent-encoded) query."""
    query = "type=delivery_report&api_key=key-1&message_id=%C3%A9t%C3%A9%2B1%2525&final=1&status=1"
    response = await fuzz_client.post(URL("/?" + query, encoded=True))
    assert response.status == 200, await response.text()
    record = gateway_store.recent_callbacks(1)[0]
    assert record.fields["message_id"] == "été+1%25"


async def test_gateway_body_that_does_not_decode_is_400_not_503(fuzz_client):
    """A Content-Encoding that fails to decode made request.read() raise RequestPayloadError,
    which never_500 turned into a 503 ("try again later") for a request that can never work."""
    response = await fuzz_client.post("/", data=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    text = await response.text()
    assert response.status == 400 and _one_line(text) and "content-encoding" in text, text
    good = gzip.compress(b"type=delivery_report&api_key=key-1&message_id=gz&final=1&status=1")
    response = await fuzz_client.post("/", data=good, headers={"Content-Encoding": "gzip", "Content-Type": FORM})
    assert response.status == 200, await response.text()


async def test_gateway_lone_surrogate_is_400_not_503(fuzz_client):
    response = await fuzz_client.post("/", data=b'{"type":"delivery_report","api_key":"key-1","message_id":"\\udc80"}',
                                      headers={"Content-Type": "application/json"})
    assert response.status == 400 and "surrogate" in await response.text()


# ------------------------------------------------------------------------- slow and big clients

SMALL = GatewayConfig(max_body=64 * 1024)


@pytest.fixture
async def raw_server(gateway_server, gateway_store):
    broker = Broker()
    broker.subscribe(FallbackAnswerer(broker, ""))
    return await gateway_server(SMALL, broker, gateway_store)


async def _status_line(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes:
    return await asyncio.wait_for(reader.readline(), timeout)


def _headers(length: int | None, chunked: bool = False) -> bytes:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n"
    if length is not None:
        head += b"Content-Length: %d\r\n" % length
    return head + b"\r\n"


async def _probe(server) -> None:
    """Another request completes while the slow client is stuck."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    body = b"type=delivery_report&api_key=k&message_id=m&final=1&status=1"
    writer.write(_headers(len(body)) + body)
    await writer.drain()
    assert (await _status_line(reader)).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_stalled_body_does_not_block_other_requests(raw_server):
    reader, writer = await asyncio.open_connection(raw_server.host, raw_server.port)
    writer.write(_headers(1000) + b"type=deli")  # then nothing more
    await writer.drain()
    for _ in range(3):
        await _probe(raw_server)
    for _ in range(5):  # trickle a few bytes, still incomplete
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.01)
    await _probe(raw_server)
    writer.close()


async def test_declared_length_over_limit_is_413_without_reading_the_body(raw_server):
    reader, writer = await asyncio.open_connection(raw_server.host, raw_server.port)
    writer.write(_headers(10**9) + b"type=x")  # claims 1 GB, sends 6 bytes, then waits
    await writer.drain()
    status = await _status_line(reader)
    assert status.startswith(b"HTTP/1.1 413"), status
    rest = await asyncio.wait_for(reader.read(4096), 3)
    assert b"larger than" in rest
    await _probe(raw_server)
    writer.close()


async def test_trickled_chunked_body_over_limit_is_413_before_it_ends(raw_server):
    reader, writer = await asyncio.open_connection(raw_server.host, raw_server.port)
    writer.write(_headers(None, chunked=True))
    chunk = b"x" * 8192
    status = b""
    for _ in range(40):  # 320 KiB offered, 8 KiB at a time, never terminated
        try:
            writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            await writer.drain()
        except ConnectionError:
            break
        try:
            status = await asyncio.wait_for(reader.readline(), 0.01)
        except TimeoutError:
            continue
        if status:
            break
    if not status:
        status = await _status_line(reader)
    assert status.startswith(b"HTTP/1.1 413"), status
    await _probe(raw_server)
    writer.close()


async def test_gzip_bomb_is_413_with_bounded_memory(raw_server):
    bomb = gzip.compress(b"body=" + b"x" * 100_000_000)  # 100 MB inflated, ~100 KB on the wire
    await _probe(raw_server)
    before = _rss_kb()
    reader, writer = await asyncio.open_connection(raw_server.host, raw_server.port)
    head = _headers(len(bomb)).replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    writer.write(head + bomb)
    await writer.drain()
    await _expect_413_in_bounded_memory(raw_server, reader, writer, before)


async def _expect_413_in_bounded_memory(raw_server, reader, writer, rss_before_kb: int) -> None:
    """The 413 arrives, the server grew by under 20 MB, and it still serves."""
    status = await _status_line(reader, timeout=10)
    assert status.startswith(b"HTTP/1.1 413"), status
    grown_mb = (_rss_kb() - rss_before_kb) / 1024
    assert grown_mb < 20, f"RSS grew by {grown_mb:.1f} MB"
    writer.close()
    await _probe(raw_server)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_ten_megabyte_body_is_413_with_bounded_memory(raw_server, declared):
    size = 10 * 1024 * 1024
    block = b"body=" + b"x" * (64 * 1024 - 5)
    await _probe(raw_server)  # warm up
    before = _rss_kb()
    reader, writer = await asyncio.open_connection(raw_server.host, raw_server.port)
    writer.write(_headers(size) if declared else _headers(None, chunked=True))
    sent = 0
    try:
        while sent < size:
            writer.write(block if declared else b"%x\r\n" % len(block) + block + b"\r\n")
            await writer.drain()
            sent += len(block)
        if not declared:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed early: fine
    await _expect_413_in_bounded_memory(raw_server, reader, writer, before)
