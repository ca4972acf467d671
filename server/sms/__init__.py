"""The SMS domain, with no I/O: what a callback is and how an answer is encoded (contract),
the SL's dates, GSM-7/UCS-2 segments, canned-reply templates, and the neutralising of
untrusted text for a terminal (sanitize)."""
