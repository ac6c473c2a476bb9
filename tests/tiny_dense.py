"""A tiny random BERT saved as a transformers directory, for dense-encoder tests (no downloads)."""

import re
import string
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

WORDS = sorted(set(re.findall(r"[a-z]+", """
the cat sat on mat cats like warm mats dogs chase and balls in park a quiet with trees pond ducks earthquakes
shake ground when faults slip seismic waves from travel through rock p arrive first woven rugs for home earthquake
parks microglia aging brain query document search dense sparse hybrid retrieval
""")))


def tiny_bert(directory: Path, seed: int = 0, max_positions: int = 64) -> Path:
    """Write a 2-layer, 32-wide random BERT with a word-level uncased vocabulary to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # the vocabulary path must be positional: transformers 5 ignores a vocab_file= keyword here
    tokenizer = BertTokenizerFast(str(directory / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=max_positions)
    BertModel(config).eval().save_pretrained(directory)
    return directory
