import os
from pathlib import Path

import pytest

# the suite exercises Seismic's approximate search on small collections, which by default are scored exactly (below
# approximate_threshold); tests of the threshold pass it explicitly. Set before tremor is imported (subprocesses too).
os.environ["TREMOR_SEISMIC_APPROXIMATE_THRESHOLD"] = "0"

DATA = Path(__file__).parent / "data"
SHARED_BEIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir"


@pytest.fixture()
def tiny_corpus() -> Path:
    return DATA / "tiny_corpus.jsonl"


def beir_dataset(name: str) -> Path:
    path = SHARED_BEIR / name
    if not (path / "corpus.jsonl.gz").is_file():
        pytest.skip(f"shared BEIR data not found at {path}")
    return path
