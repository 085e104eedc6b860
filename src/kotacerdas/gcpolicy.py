"""The cycle collector's settings for a process that serves requests (`kotacerdas serve` and its workers)."""

from __future__ import annotations

import gc

# Collect the youngest generation after 10,000 net allocations instead of CPython's 700. A CreateObservations body
# of 1,000 rows makes some 5,000 containers that live until its answer: with 700, eight young collections ran per
# request, 1.4 ms of its 17 ms (bench/ingest_http.py); with 10,000, about none. Garbage without cycles is freed by
# reference counting either way; cycles wait a little longer.
YOUNG_THRESHOLD = 10_000


def settle_for_serving() -> None:
    """Move every object alive now into the permanent generation (`gc.freeze`: start-up made them to last, and full
    collections stop walking them) and raise the young generation's threshold."""
    gc.freeze()
    _generation0, generation1, generation2 = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, generation1, generation2)
