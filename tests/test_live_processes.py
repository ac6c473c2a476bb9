"""Live indexes across processes: a writer killed with SIGKILL at random moments, and readers searching while a
writer commits and merges (tests/live_worker.py runs both sides)."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from live_worker import expected

from tremor.index.segments import read_commit
from tremor.search import Searcher

WORKER = Path(__file__).parent / "live_worker.py"


def spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def committed_state(path: Path) -> tuple[int, dict[str, str]]:
    """(generation, id -> text of the live documents) as a fresh reader sees the index (0 and nothing before the
    first commit)."""
    if read_commit(path) is None:
        return 0, {}
    searcher = Searcher.load(path)
    live = searcher.index.live_mask()
    numbers = [int(n) for n in live.nonzero()[0]]
    docs = searcher.docstore.get(numbers)
    searcher.docstore.close()
    return searcher.manifest["generation"], {d.id: d.text for d in docs}


def test_writer_killed_at_random_moments_leaves_the_last_commit(tmp_path):
    path = tmp_path / "live"
    rng = random.Random(7)
    last_committed = 0
    generations = []
    for _ in range(25):
        writer = spawn("write", str(path), "100000")
        ready = writer.stdout.readline().split()
        assert ready and ready[0] == "ready", writer.stderr.read()
        assert int(ready[1]) >= last_committed
        time.sleep(rng.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        printed = [int(line.split()[1]) for line in out.splitlines() if line.startswith("committed")]
        last_committed = max([last_committed, *printed])
        generation, state = committed_state(path)
        # the commit that was being written when the kill came may or may not have landed; nothing in between
        assert generation in (last_committed, last_committed + 1)
        assert state == expected(generation), f"generation {generation}"
        last_committed = generation
        generations.append(generation)
    assert generations[-1] > 10  # the writer made progress between kills (adds, commits and merges were hit)
    # left-overs of killed writers (uncommitted segments, temporary files) are cleared when a writer opens
    writer = spawn("write", str(path), "0")
    writer.communicate()
    commit = read_commit(path)
    named = {Path(s["path"]).name for s in commit["segments"]}
    assert {p.name for p in (path / "segments").iterdir()} == named
    assert [p.name for p in path.glob("commit_*.json")] == [f"commit_{commit['generation']}.json"]


def test_readers_in_other_processes_never_fail_or_see_a_half_commit(tmp_path):
    path = tmp_path / "live"
    first = spawn("write", str(path), "2")  # two segments: the readers warm up on the several-segment search
    assert first.wait(60) == 0, first.stderr.read()
    readers = [spawn("read", str(path), "10") for _ in range(2)]
    for reader in readers:  # each has loaded the index and compiled its kernels: its 10 s are spent reading
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
    # drain the readers' output while the writer runs: a reader blocked on a full pipe would stop reading (read
    # through the same buffered pipe objects as readline above, which may already hold the next lines)
    outputs: dict[int, tuple[str, str]] = {}
    drains = [threading.Thread(target=lambda i=i, r=r: outputs.__setitem__(i, (r.stdout.read(), r.stderr.read())))
              for i, r in enumerate(readers)]
    for drain in drains:
        drain.start()
    writer = spawn("write", str(path), "120")
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    for drain in drains:
        drain.join(timeout=150)
    for reader in readers:
        reader.wait(timeout=30)
    seen = set()
    for i, reader in enumerate(readers):
        out, err = outputs[i]
        assert reader.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines
        for line in lines:
            state = expected(line["generation"])
            assert line["live"] == sorted(state), f"generation {line['generation']}"
            for hits in line["hits"]:
                assert set(hits) <= set(state)
            seen.add(line["generation"])
    assert len(seen) > 3  # the readers moved through several commits, merges among them
