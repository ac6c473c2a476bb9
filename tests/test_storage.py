import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import tremor
from tremor.errors import IndexFormatError, TremorError
from tremor.index import storage
from tremor.search import Searcher

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def built(tmp_path, tiny_corpus) -> Path:
    return tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)


def test_round_trip_gives_identical_results(built, tiny_corpus):
    searcher = Searcher.load(built)
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["format_version"] == storage.FORMAT_VERSION
    assert manifest["counts"]["documents"] == 6 and manifest["index_type"] == "exact"
    assert isinstance(searcher.index.post_values, np.memmap)  # memory-mapped, not copied
    hits = searcher.search("earthquake waves", k=3)
    assert [h.id for h in hits][:2] == ["d5", "d4"] and hits[0].title == "Seismic waves"
    # rebuilding in memory gives the same ranking and scores
    encoder = tremor.BM25Encoder()
    docs = list(tremor.read_documents(tiny_corpus))
    vectors = encoder.fit_encode([d.full_text for d in docs])
    scores, ids = tremor.ExactIndex.build(vectors).search(encoder.encode_queries(["earthquake waves"]), 3)
    assert [docs[i].id for i in ids[0] if i >= 0] == [h.id for h in hits]
    assert np.allclose(scores[0][: len(hits)], [h.score for h in hits])


def test_existing_directory_needs_overwrite(built, tiny_corpus):
    with pytest.raises(TremorError, match="already exists"):
        tremor.build_index(tiny_corpus, built, progress=False)
    tremor.build_index(tiny_corpus, built, overwrite=True, progress=False)
    assert Searcher.load(built).n_docs == 6


def test_corrupted_manifest_rejected(built):
    (built / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="corrupted manifest"):
        Searcher.load(built)


def test_wrong_version_rejected(built):
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["format_version"] = 999
    (built / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="version 999"):
        Searcher.load(built)


def test_missing_and_truncated_arrays_rejected(built):
    victim = built / "arrays" / "post_docs.npy"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match="truncated"):
        Searcher.load(built)
    victim.unlink()
    with pytest.raises(IndexFormatError, match="missing"):
        Searcher.load(built)


def test_flipped_bytes_caught_by_verify(built):
    victim = built / "arrays" / "post_values.npy"
    data = bytearray(victim.read_bytes())
    data[-4] ^= 0x01  # the lowest mantissa bit of the last weight: still a valid weight
    victim.write_bytes(bytes(data))
    Searcher.load(built)  # sizes and structure still hold: only the checksum can tell
    with pytest.raises(IndexFormatError, match="checksum"):
        Searcher.load(built, verify=True)


def test_failure_midway_leaves_nothing(tmp_path, tiny_corpus, monkeypatch):
    calls = {"n": 0}
    real_save = np.save

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(storage.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_killed_build_leaves_no_index_under_final_name(tmp_path, tiny_corpus):
    # A child process builds an index but stalls after writing its first array; we SIGKILL it there.
    script = textwrap.dedent(f"""
        import time, numpy as np
        import tremor
        from tremor.index import storage
        real_save = np.save
        def slow_save(*args, **kwargs):
            real_save(*args, **kwargs)
            print("wrote", flush=True)
            time.sleep(60)
        storage.np.save = slow_save
        tremor.build_index({str(tiny_corpus)!r}, {str(tmp_path / "idx")!r}, progress=False)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout.readline().strip() == "wrote"
    temporaries = [p for p in tmp_path.iterdir() if p.name.startswith(".idx.tmp-")]
    assert temporaries and any(temporaries[0].rglob("*.npy"))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    time.sleep(0.1)
    assert not (tmp_path / "idx").exists()
    with pytest.raises(IndexFormatError):
        Searcher.load(tmp_path / "idx")
