"""The SMS rules of the contact projection and delivery states, as pure functions
(data/projection.py): sessions, tags, blacklisting, counts, last seen, delivery finality."""

from __future__ import annotations

from data.models import ContactState
from data.projection import (
    DELIVERY_CODE, FINAL, concerned_phones, needs_answered_type, next_contact, next_delivery, shows_in_thread,
)

P = "5557000801"
T0 = 1_700_000_000.0


def cb(typ: str, *phones: str, at: float = T0, **parsed) -> dict:
    return {"kind": "callback", "seq": 1, "received_at": at, "type": typ, "fields": {}, "parsed": parsed,
            "warnings": (), "phones": phones, "peer": "", "app": "", "held": False}


def resp(reply: str = "", *, phone: str = P, outcome: str = "answered", **decision) -> dict:
    if reply:
        decision["reply"] = reply
    return {"kind": "response", "callback_seq": 1, "sent_at": T0, "status": 200, "body": reply,
            "content_type": "text/plain", "answered_by": "operator", "outcome": outcome,
            "latency_ms": 1.0, "phone": phone, "decision": decision}


def out(phone: str = P, error: str = "") -> dict:
    return {"kind": "outbound", "seq": 2, "sent_at": T0, "phone": phone, "body": "hi", "message_ids": ("m1",), "error": error}


def run(*docs: dict, answered: str | None = None, phone: str = P) -> ContactState:
    state = ContactState(phone)
    for doc in docs:
        state = next_contact(state, doc, answered_type=answered)
    return state


def test_a_message_opens_the_session_counts_in_and_keeps_the_carrier():
    s = run(cb("incoming_message", P, carrier_name="Acme"), cb("incoming_message", P, at=T0 + 5))
    assert s.session_open is True and s.messages_in == 2 and s.carrier == "Acme" and s.last_seen == T0 + 5


def test_the_session_closes_by_callback_or_by_decision_and_reopens_on_a_message():
    assert run(cb("incoming_message", P), cb("session_closed", P)).session_open is False
    assert run(cb("incoming_message", P), resp("bye", close_session=True)).session_open is False
    assert run(cb("session_closed", P), cb("incoming_message", P)).session_open is True
    assert run().session_open is None  # nothing said yet


def test_tags_apply_only_to_an_answer_to_a_subscription():
    assert run(resp(tags=["vip"]), answered="subscription_created").tags == ("vip",)
    assert run(resp("hi", tags=["vip"]), answered="incoming_message").tags == ()
    assert run(resp(tags=["vip"])).tags == ()


def test_blacklisting_and_the_loop_flag():
    s = run(cb("phone_blacklisted", P))
    assert s.blacklisted is True
    assert next_contact(s, cb("phone_unblacklisted", P)).blacklisted is False
    assert run(cb("auto_reply_loop", P)).loop_flagged is True
    assert run(cb("subscription_created", P)).subscribed is True
    assert run(cb("subscription_created", P), cb("subscription_canceled", P)).subscribed is False


def test_counts_out_only_what_was_sent():
    assert run(resp("hello")).messages_out == 1
    assert run(resp(outcome="caller_gone")).messages_out == 0
    assert run(out()).messages_out == 1
    assert run(out(error="blacklisted")).messages_out == 0


def test_last_seen_never_moves_back_and_a_second_phone_is_not_the_texter():
    s = run(cb("incoming_message", P, at=T0 + 10), cb("session_closed", P, at=T0))
    assert s.last_seen == T0 + 10
    other = run(cb("incoming_message", P, "5550000002", at=T0 + 3), phone="5550000002")
    assert other.messages_in == 0 and other.session_open is None and other.last_seen == T0 + 3


def test_every_written_form_of_a_number_is_one_texter():
    doc = cb("incoming_message", "+1 (555) 700-0801", "15557000801")
    assert concerned_phones(doc) == (P,)
    assert run(doc).messages_in == 1
    assert shows_in_thread(doc, P)
    assert concerned_phones(resp(phone="")) == ()


def test_what_shows_in_a_thread():
    assert shows_in_thread(resp("hi"), P) and shows_in_thread(resp(outcome="timed_out"), P)
    assert not shows_in_thread(resp(tags=["vip"]), P)
    assert not shows_in_thread(cb("session_closed", P), P)
    assert shows_in_thread(out(), P)


def test_a_final_delivery_state_is_not_undone_by_a_late_report():
    delivered = next_delivery(0, {"status_name": "delivered", "final": True})
    assert delivered == DELIVERY_CODE["delivered"] | FINAL
    assert next_delivery(delivered, {"status_name": "pending", "final": False}) is None
    assert next_delivery(delivered, {"status_name": "failed", "final": True}) == DELIVERY_CODE["failed"] | FINAL
    assert next_delivery(DELIVERY_CODE["pending"], {"status_name": "bogus"}) == DELIVERY_CODE["pending"]


# ---- the phone list: newest entry, missed texts --------------------------------------------


def test_the_newest_thread_entry_is_kept_with_its_direction():
    s = run(cb("incoming_message", P, at=T0, body="where is my order"))
    assert (s.last_at, s.last_text, s.last_dir) == (T0, "where is my order", "in")
    answered = next_contact(s, resp("on its way"), answered_type="incoming_message")
    assert (answered.last_text, answered.last_dir) == ("on its way", "out")
    sent = next_contact(answered, out())
    assert (sent.last_text, sent.last_dir) == ("hi", "out")


def test_a_fallback_shows_what_went_out_and_a_hang_up_nothing():
    fell = run(resp("We will get back to you.", outcome="timed_out"), answered="incoming_message")
    assert (fell.last_text, fell.last_dir) == ("We will get back to you.", "fallback")
    gone = dict(resp(outcome="caller_gone"), status=0, body="", answered_by="fallback")
    assert (run(gone, answered="incoming_message").last_text, run(gone).last_dir) == ("", "fallback")


def test_what_is_not_a_thread_entry_leaves_the_last_entry_alone():
    s = run(cb("incoming_message", P, at=T0, body="hello"), cb("session_closed", P, at=T0 + 5),
            cb("delivery_report", P, at=T0 + 6), resp(tags=["vip"]), answered="subscription_created")
    assert (s.last_at, s.last_text, s.last_dir) == (T0, "hello", "in")
    assert s.last_seen == T0 + 6 and s.active_at == T0 + 6  # activity: the newer of the two


def test_the_last_text_is_cut_to_a_preview():
    s = run(cb("incoming_message", P, body="x" * 5_000))
    assert s.last_text == "x" * 120


def test_missed_counts_texts_that_no_operator_answered():
    assert needs_answered_type(resp(outcome="timed_out")) and not needs_answered_type(resp("hi"))
    for outcome in ("timed_out", "caller_gone", "overflow"):
        assert run(resp(outcome=outcome), answered="incoming_message").missed == 1
    assert run(resp("hi"), answered="incoming_message").missed == 0
    assert run(resp(outcome="shutdown"), answered="incoming_message").missed == 0
    # a subscription that timed out is not a text left unanswered
    assert run(resp(outcome="timed_out"), answered="subscription_created").missed == 0
