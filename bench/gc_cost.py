"""What one full garbage collection costs an API process, with and without the start-up freeze
(services/query_api/main.py): `python -m bench.gc_cost` prints one JSON line. The app is built as
in the API (create_app, every module imported), then `gc.collect()` is timed in CPU time of this
thread (the machine's load does not inflate it), median of ROUNDS, before and after `gc.freeze()`.
A process of its own, so that the bench's own objects are not counted.
"""

from __future__ import annotations

import gc
import json
import statistics
import time

from services.query_api.main import create_app

ROUNDS = 5


def full_collection_ms() -> float:
    spent = []
    for _ in range(ROUNDS):
        started = time.thread_time()
        gc.collect()
        spent.append((time.thread_time() - started) * 1000)
    return statistics.median(spent)


def main() -> None:
    app = create_app()  # the settings from the environment, as the API's
    tracked = len(gc.get_objects())
    unfrozen = full_collection_ms()
    gc.freeze()
    frozen = full_collection_ms()
    print(json.dumps({"objects": tracked, "unfrozen_ms": unfrozen, "frozen_ms": frozen}))
    del app


if __name__ == "__main__":
    main()
