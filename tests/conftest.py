from pathlib import Path

import pytest

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
