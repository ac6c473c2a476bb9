"""A tiny random BERT saved as a transformers directory, for dense-encoder and training tests (no downloads), and
the five documents the training tests learn on (every word in the tiny vocabulary)."""

import re
import string
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from tremor.corpus import Document

WORDS = sorted(set(re.findall(r"[a-z]+", """
the cat sat on mat cats like warm mats dogs chase and balls in park a quiet with trees pond ducks earthquakes
shake ground when faults slip seismic waves from travel through rock p arrive first woven rugs for home earthquake
parks microglia aging brain query document search dense sparse hybrid retrieval
""")))

CORPUS = {
    "d1": Document("d1", "the cat sat on the mat", "cats"),
    "d2": Document("d2", "dogs chase balls in the park", "dogs"),
    "d3": Document("d3", "a quiet pond with ducks and trees", "pond"),
    "d4": Document("d4", "earthquakes shake the ground when faults slip", "earthquakes"),
    "d5": Document("d5", "seismic waves travel through rock", "seismic waves"),
}


def tiny_bert(directory: Path, seed: int = 0, max_positions: int = 64) -> Path:
    """Write a 2-layer, 32-wide random BERT with a word-level uncased vocabulary to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # the vocabulary path must be positional: transformers 5 ignores a vocab_file= keyword here
    tokenizer = BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True)
    assert len(tokenizer) == len(vocab), "tokenizer did not read the vocabulary file"
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=max_positions)
    BertModel(config).eval().save_pretrained(directory)
    return directory
