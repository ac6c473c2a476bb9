"""Small indexes for the serving tests, built from tests/data/tiny_corpus.jsonl: BM25 exact, BM25 Seismic, and a
tiny random SPLADE model's exact index with a dense side (so queries have expansions and hybrid search works)."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from test_encoders import write_wordpiece_vocab
from tiny_dense import tiny_bert
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

from tremor.encoders.neural import save_model_dir
from tremor.encoders.splade import splade_config
from tremor.index.builder import build_index
from tremor.search.dense import add_dense

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.jsonl"


def tiny_splade_dir(directory: Path) -> Path:
    """A 2-layer, 32-wide random BERT MLM saved as a SPLADE model directory."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(str(write_wordpiece_vocab(directory / "wordpiece.txt")))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    return save_model_dir(directory / "splade", splade_config(document_max_length=32, query_max_length=16),
                          model=model, tokenizer=tokenizer)


def build_serve_indexes(root: Path, splade: bool = True) -> dict[str, Path]:
    """name -> index directory: 'bm25' (exact), 'seismic' (BM25 vectors) and, with ``splade``, 'splade' (exact,
    with a dense side)."""
    out = {"bm25": build_index(CORPUS, root / "bm25", progress=False),
           "seismic": build_index(CORPUS, root / "seismic", index="seismic,lambda=inf", progress=False)}
    if splade:
        model = tiny_splade_dir(root / "models")
        out["splade"] = build_index(CORPUS, root / "splade", encoder=str(model), progress=False)
        add_dense(out["splade"], model=tiny_bert(root / "models" / "dense"), device="cpu", progress=False)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``tremor serve`` as a real subprocess on a free loopback port; stopped (and its output kept) on exit."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None, start_timeout: float = 120) -> None:
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = env
        self.start_timeout = start_timeout

    def __enter__(self) -> ServerProcess:
        import os
        import subprocess
        import sys
        import time
        import urllib.request

        self.log = open(self.log_path, "w")
        env = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen([sys.executable, "-m", "tremor", "serve", *self.args, "--host", "127.0.0.1",
                                         "--port", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tremor serve exited with {self.process.returncode}:\n"
                                   f"{self.log_path.read_text()}")
            try:
                request = urllib.request.Request(f"{self.url}/health", headers=self.headers())
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"tremor serve did not answer within {self.start_timeout} s:\n{self.log_path.read_text()}")

    def headers(self) -> dict:
        key = (self.env or {}).get("TREMOR_API_KEY")
        return {"X-API-Key": key} if key else {}

    def __exit__(self, *exc) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.log.close()
