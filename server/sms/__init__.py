"""The SMS domain with no I/O: what a canned reply is and how it is filled."""
