"""The sim dir's creation marker under concurrency: two `up --sim` starting one new lab at once (the lab lock
then refuses the second) both record its creation; neither may fail, and the first time stays."""

from __future__ import annotations

import threading
from datetime import datetime

from labctl.sim.paths import CREATED_FILE, lab_created, mark_created


def test_mark_created_from_many_threads_at_once(tmp_path):
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "vms").mkdir()
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def one():
        try:
            start.wait()
            mark_created(sim)
        except BaseException as e:  # noqa: BLE001 - the test reports any of them
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in sim.iterdir()) == [CREATED_FILE, "vms"]  # no temporary file left behind
    first = lab_created(sim)
    assert isinstance(first, datetime)
    mark_created(sim)
    assert lab_created(sim) == first  # kept
