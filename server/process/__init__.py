"""Process plumbing: the event loop, quit signals read off the loop, the exit deadline, and
the garbage-collection policy."""
