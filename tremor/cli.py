"""The ``tremor`` command: build indexes, search them, run the offline demo."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import click

from tremor.errors import TremorError


class _Group(click.Group):
    """Turns TremorError (bad input, bad index, bad query) into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TremorError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.version_option(package_name="tremor")
def cli() -> None:
    """tremor: learned-sparse retrieval (BM25 and neural sparse encoders, exact and Seismic indexes)."""


@cli.group(cls=_Group)
def index() -> None:
    """Build and inspect index directories."""


def _parse_params(pairs: tuple[str, ...]) -> dict:
    from tremor.index import _parse_value

    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise TremorError(f"--param expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        params[key.strip()] = _parse_value(value.strip())
    return params


@index.command("build")
@click.option("--corpus", required=True, help="BEIR folder, JSONL or TSV file, or ir_datasets id.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Index directory.")
@click.option("--encoder", default="bm25", show_default=True, help="'bm25', or a model directory / hub name.")
@click.option("--index", "index_spec", default="exact", show_default=True,
              help="Index type and build parameters, e.g. 'exact' or 'seismic,lambda=3000,beta=0.2,alpha=0.5'.")
@click.option("--param", "params", multiple=True, help="Extra build parameter key=value (repeatable).")
@click.option("--batch-size", default=256, show_default=True, help="Documents per encoder batch.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index directory.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def index_build(corpus: str, out: Path, encoder: str, index_spec: str, params: tuple[str, ...], batch_size: int,
                overwrite: bool, quiet: bool) -> None:
    """Encode a corpus and write an index directory."""
    from tremor.index.builder import build_index

    started = time.perf_counter()
    path = build_index(corpus, out, encoder=encoder, index=index_spec, overwrite=overwrite, batch_size=batch_size,
                       progress=not quiet, **_parse_params(params))
    from tremor.index.storage import read_manifest

    manifest = read_manifest(path)
    click.echo(f"built {manifest['index_type']} index of {manifest['counts']['documents']} documents at {path} "
               f"in {time.perf_counter() - started:.1f}s")


@index.command("info")
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--verify", is_flag=True, help="Also check every array's sha256.")
def index_info(index_dir: Path, verify: bool) -> None:
    """Print an index's manifest (and check its integrity)."""
    from tremor.search import Searcher

    searcher = Searcher.load(index_dir, verify=verify)
    manifest = dict(searcher.manifest)
    manifest["arrays"] = {name: {k: v for k, v in entry.items() if k != "sha256"}
                          for name, entry in manifest["arrays"].items()}
    manifest["bytes_on_disk"] = sum(p.stat().st_size for p in Path(index_dir).rglob("*") if p.is_file())
    click.echo(json.dumps(manifest, indent=2, sort_keys=True))


def _print_hits(query: str, hits, width: int) -> None:
    click.echo(f"query: {query}")
    if not hits:
        click.echo("  (no matching documents)")
    for hit in hits:
        snippet = " ".join(f"{hit.title or ''} {hit.text or ''}".split())
        room = max(width - 32, 20)
        if len(snippet) > room:
            snippet = snippet[: room - 1] + "…"
        click.echo(f"  {hit.rank:>3}  {hit.score:9.4f}  {hit.id:<12.12}  {snippet}")


@index.command("add-dense")
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--model", default=None, help="Sentence-transformers directory or hub name [default: all-MiniLM-L6-v2].")
@click.option("--index", "factory", default="flat", show_default=True,
              help="'flat' (exact inner product) or a faiss factory string, e.g. 'HNSW32' or 'IVF1024,Flat'.")
@click.option("--batch-size", default=64, show_default=True, help="Texts per encoder batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--overwrite", is_flag=True, help="Replace an existing dense index.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def index_add_dense(index_dir: Path, model: str | None, factory: str, batch_size: int, device: str, overwrite: bool,
                    quiet: bool) -> None:
    """Encode an index's documents with a dense model and store a faiss index in INDEX_DIR/dense."""
    from tremor.search.dense import add_dense

    started = time.perf_counter()
    path = add_dense(index_dir, model=model, factory=factory, device=device, batch_size=batch_size,
                     overwrite=overwrite, progress=not quiet)
    click.echo(f"added a dense '{factory}' index at {path} in {time.perf_counter() - started:.1f}s")


def hybrid_options(command):
    """Options that choose a retrieval pipeline: dense or hybrid retrieval, fusion, PRF and its placement."""
    from tremor.search.fusion import FUSION_METHODS
    from tremor.search.pipeline import PLACEMENTS, PRF_SIDES, PipelineConfig
    from tremor.search.prf import VECTOR_PRF_METHODS

    d = PipelineConfig()
    options = [
        click.option("--hybrid", is_flag=True, help="Fuse the sparse index with the dense index beside it."),
        click.option("--dense", "dense_only", is_flag=True, help="Search only the dense index."),
        click.option("--fusion", type=click.Choice(FUSION_METHODS), default=d.fusion, show_default=True,
                     help="Per-query normalization before interpolation, or reciprocal rank fusion."),
        click.option("--alpha", type=float, default=d.alpha, show_default=True,
                     help="Interpolation weight of the sparse side: alpha*sparse + (1-alpha)*dense."),
        click.option("--prf", type=click.Choice(PRF_SIDES), default="none", show_default=True,
                     help="Pseudo-relevance feedback on which side(s): sparse Rocchio, dense Vector-PRF."),
        click.option("--placement", type=click.Choice(PLACEMENTS), default=d.placement, show_default=True,
                     help="Hybrid PRF: interpolate before PRF (hybrid feedback), after it (fuse PRF runs), or both."),
        click.option("--depth", type=int, default=d.depth, show_default=True, help="Candidates per list."),
        click.option("--fb-docs", type=int, default=d.fb_docs, show_default=True, help="Rocchio feedback docs."),
        click.option("--fb-terms", type=int, default=d.fb_terms, show_default=True, help="Rocchio term budget."),
        click.option("--rocchio-alpha", type=float, default=d.rocchio_alpha, show_default=True),
        click.option("--rocchio-beta", type=float, default=d.rocchio_beta, show_default=True),
        click.option("--dense-fb-docs", type=int, default=d.dense_fb_docs, show_default=True,
                     help="Vector-PRF feedback docs."),
        click.option("--vector-prf", type=click.Choice(VECTOR_PRF_METHODS), default=d.vector_prf,
                     show_default=True),
        click.option("--model", default=None, help="Dense query model, if moved since add-dense."),
        click.option("--device", default="auto", show_default=True, help="Device for the dense query encoder."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def pipeline_config(options: dict):
    """The PipelineConfig named by ``hybrid_options`` values (None when they ask for the plain sparse search)."""
    from tremor.search.pipeline import PipelineConfig

    if options["hybrid"] and options["dense_only"]:
        raise TremorError("choose one of --hybrid and --dense")
    retriever = "hybrid" if options["hybrid"] else "dense" if options["dense_only"] else "sparse"
    if retriever == "sparse" and options["prf"] == "none":
        return None
    return PipelineConfig(retriever=retriever, fusion=options["fusion"], alpha=options["alpha"], prf=options["prf"],
                          placement=options["placement"], depth=options["depth"], fb_docs=options["fb_docs"],
                          fb_terms=options["fb_terms"], rocchio_alpha=options["rocchio_alpha"],
                          rocchio_beta=options["rocchio_beta"], dense_fb_docs=options["dense_fb_docs"],
                          vector_prf=options["vector_prf"])


@cli.command("search")
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("queries", nargs=-1, required=True)
@click.option("-k", "--k", "k", default=10, show_default=True, help="Number of hits per query.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines output, one object per query.")
@click.option("--param", "params", multiple=True, help="Search-time parameter key=value (repeatable).")
@hybrid_options
def search(index_dir: Path, queries: tuple[str, ...], k: int, as_json: bool, params: tuple[str, ...],
           **pipeline_options) -> None:
    """Search an index directory with one or more text queries (sparse, dense or hybrid, with or without PRF)."""
    from tremor.search import Searcher

    config = pipeline_config(pipeline_options)
    if config is None:
        searcher = Searcher.load(index_dir)
        results = searcher.batch_search(list(queries), k=k, **_parse_params(params))
    else:
        from tremor.search.pipeline import HybridSearcher

        config.check()
        hybrid = HybridSearcher.load(index_dir, dense=config.retriever != "sparse", model=pipeline_options["model"],
                                     device=pipeline_options["device"])
        hybrid.sparse.search_params.update(_parse_params(params))
        results = hybrid.batch_search(list(queries), k=k, config=config)
    width = shutil.get_terminal_size((120, 20)).columns
    for query, hits in zip(queries, results, strict=True):
        if as_json:
            click.echo(json.dumps({"query": query, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
        else:
            _print_hits(query, hits, width)


@cli.command("encode")
@click.option("--encoder", "encoder_spec", required=True,
              help="Model directory or hub name (or 'bm25', fitted on the corpus, for documents).")
@click.option("--corpus", default=None, help="Documents to encode: BEIR folder, JSONL/TSV file or ir_datasets id.")
@click.option("--queries", default=None, help="Queries to encode: BEIR folder, JSONL/TSV file or ir_datasets id.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output: a vectors directory (npy) or a .jsonl file (jsonl).")
@click.option("--format", "fmt", type=click.Choice(["npy", "jsonl"]), default="npy", show_default=True,
              help="npy: CSR arrays + ids (tremor.encoders.vector_files.read_vectors); jsonl: {id, contents, vector}.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda, cuda:N.")
@click.option("--precision", default="auto", show_default=True, help="auto (bf16 autocast on CUDA), fp32, bf16, fp16.")
@click.option("--batch-size", default=32, show_default=True, help="Texts per model batch.")
@click.option("--max-length", type=int, default=None, help="Override the model's max tokens for this side.")
@click.option("--top-k", type=int, default=None, help="Keep the k largest weights of each vector.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def encode(encoder_spec: str, corpus: str | None, queries: str | None, out: Path, fmt: str, device: str,
           precision: str, batch_size: int, max_length: int | None, top_k: int | None, overwrite: bool,
           quiet: bool) -> None:
    """Encode documents (--corpus) or queries (--queries) into sparse vectors on disk."""
    from tremor.corpus import read_documents, read_queries
    from tremor.encoders import get_encoder
    from tremor.encoders.vector_files import write_vectors, write_vectors_jsonl

    if (corpus is None) == (queries is None):
        raise TremorError("give exactly one of --corpus (documents) or --queries")
    side = "document" if corpus is not None else "query"
    if out.exists() and not overwrite:
        raise TremorError(f"{out} already exists; choose another path or pass --overwrite")
    started = time.perf_counter()
    if side == "document":
        records = list(read_documents(corpus))
        ids, texts = [d.id for d in records], [d.full_text for d in records]
    else:
        records = read_queries(queries)
        ids, texts = [q.id for q in records], [q.text for q in records]
    if not texts:
        raise TremorError(f"{corpus or queries}: nothing to encode")
    if encoder_spec.lower() == "bm25":
        if side == "query":
            raise TremorError("BM25 query vectors need the statistics of an index; use 'tremor search' instead")
        from tremor.index.builder import encode_corpus

        encoder = get_encoder("bm25")
        vectors = encode_corpus(encoder, texts, progress=not quiet)
    else:
        from tremor.encoders.neural import load_encoder

        encoder = load_encoder(encoder_spec, device=device, precision=precision, batch_size=batch_size,
                               **{f"{side}_max_length": max_length, f"{side}_top_k": top_k})
        encode_side = encoder.encode_documents if side == "document" else encoder.encode_queries
        vectors = encode_side(texts, progress=not quiet)
    seconds = time.perf_counter() - started
    if fmt == "npy":
        write_vectors(out, vectors, ids, {"side": side, "source": str(corpus or queries),
                                          "encoder": encoder.config()}, overwrite=overwrite)
    else:
        write_vectors_jsonl(out, vectors, ids, texts, encoder.tokens, overwrite=overwrite)
    click.echo(f"encoded {len(texts)} {side}s ({vectors.nnz / len(texts):.1f} non-zeros each) in {seconds:.1f}s "
               f"→ {out}")


DEMO_QUERIES = ("what causes earthquakes", "how are learned sparse vectors searched quickly",
                "measuring the size of an earthquake")


@cli.command("demo")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the demo index here instead of a temporary directory.")
def demo(keep: Path | None) -> None:
    """Build a BM25 index over a small corpus shipped with tremor and run a few queries (offline)."""
    from tremor.index.builder import build_index
    from tremor.search import Searcher

    corpus = resources.files("tremor") / "data" / "demo.jsonl"
    with resources.as_file(corpus) as corpus_file, tempfile.TemporaryDirectory(prefix="tremor-demo-") as tmp:
        out = keep or Path(tmp) / "demo-index"
        started = time.perf_counter()
        build_index(corpus_file, out, encoder="bm25", index="exact", overwrite=keep is not None, progress=False)
        searcher = Searcher.load(out)
        click.echo(f"indexed {searcher.n_docs} documents from {corpus_file.name} in "
                   f"{time.perf_counter() - started:.1f}s → {out if keep else '(temporary directory)'}\n")
        width = shutil.get_terminal_size((120, 20)).columns
        for query in DEMO_QUERIES:
            _print_hits(query, searcher.search(query, k=3), width)
            click.echo("")


def main() -> None:
    """Console entry point."""
    cli(prog_name="tremor")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
