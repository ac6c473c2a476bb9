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
@click.option("--encoder", default="bm25", show_default=True,
              help="'bm25', a named model ('splade-tiny'), or a model directory / hub name.")
@click.option("--index", "index_spec", default="exact", show_default=True,
              help="Index type and build parameters, e.g. 'exact' or 'seismic,lambda=3000,beta=0.2,alpha=0.5'.")
@click.option("--param", "params", multiple=True, help="Extra build parameter key=value (repeatable).")
@click.option("--lambda", "n_postings", type=float, default=None,
              help="Seismic λ (n_postings): postings kept per list on average; 'inf' keeps all.")
@click.option("--beta", "centroid_fraction", type=float, default=None,
              help="Seismic β (centroid_fraction): blocks per list as a fraction of its length.")
@click.option("--alpha", "summary_energy", type=float, default=None,
              help="Seismic α (summary_energy): share of a block summary's L1 mass kept.")
@click.option("--knn", type=int, default=None, help="Seismic κ: neighbours stored per document (SeismicWave).")
@click.option("--batch-size", default=256, show_default=True, help="Documents per encoder batch.")
@click.option("--vectors", "vectors_dir", default=None, type=click.Path(path_type=Path),
              help="Document vectors from 'tremor encode' of this corpus: index them instead of encoding again "
                   "(--encoder then defaults to the model they record).")
@click.option("--overwrite", is_flag=True, help="Replace an existing index directory (only a tremor index).")
@click.option("--drop-dense", is_flag=True,
              help="With --overwrite: allow deleting the index's dense side when the documents changed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--shards", type=int, default=None,
              help="Build a sharded index of this many shards on Ray (needs tremor[ray]); search it as any index.")
@click.option("--ray", "ray_address", default="auto", show_default=True,
              help="With --shards: 'auto' (the running Ray cluster, else a local one) or a cluster address.")
@click.option("--workers", type=int, default=None,
              help="With --shards: tasks or model replicas at once [default: all the cluster holds].")
@click.pass_context
def index_build(ctx: click.Context, corpus: str, out: Path, encoder: str, index_spec: str, params: tuple[str, ...],
                n_postings: float | None, centroid_fraction: float | None, summary_energy: float | None,
                knn: int | None, batch_size: int, vectors_dir: Path | None, overwrite: bool, drop_dense: bool,
                quiet: bool, shards: int | None, ray_address: str, workers: int | None) -> None:
    """Encode a corpus (or take its vectors from 'tremor encode') and write an index directory (or, with --shards,
    a sharded one built on Ray)."""
    from tremor.index.builder import build_index, build_index_from_vectors

    extra = _parse_params(params)
    seismic = {"n_postings": n_postings, "centroid_fraction": centroid_fraction, "summary_energy": summary_energy,
               "knn": knn}
    seismic = {key: value for key, value in seismic.items() if value is not None}
    if seismic:
        if index_spec.split(",")[0].strip() != "seismic":
            raise TremorError("--lambda/--beta/--alpha/--knn apply to Seismic indexes; add --index seismic")
        if "n_postings" in seismic and seismic["n_postings"] != float("inf"):
            seismic["n_postings"] = int(seismic["n_postings"])
        extra.update(seismic)
    started = time.perf_counter()
    if shards is not None:
        if vectors_dir is not None:
            raise TremorError("--vectors and --shards cannot be combined; a sharded build encodes on Ray")
        _build_sharded(corpus, out, encoder, index_spec, overwrite, quiet, shards, ray_address, workers, extra)
        return
    had_dense = overwrite and (out / "dense").is_dir()
    if vectors_dir is not None:
        given = ctx.get_parameter_source("encoder") != click.core.ParameterSource.DEFAULT
        path = build_index_from_vectors(vectors_dir, corpus, out, encoder if given else None, index_spec,
                                        overwrite=overwrite, progress=not quiet, drop_dense=drop_dense, **extra)
    else:
        path = build_index(corpus, out, encoder=encoder, index=index_spec, overwrite=overwrite,
                           batch_size=batch_size, progress=not quiet, drop_dense=drop_dense, **extra)
    from tremor.index.storage import read_manifest

    manifest = read_manifest(path)
    click.echo(f"built {manifest['index_type']} index of {manifest['counts']['documents']} documents at {path} "
               f"in {time.perf_counter() - started:.1f}s")
    if had_dense:
        click.echo(f"kept {path / 'dense'} (same documents)" if (path / "dense").is_dir()
                   else f"removed {path / 'dense'} (--drop-dense)", err=True)


def _build_sharded(corpus: str, out: Path, encoder: str, index_spec: str, overwrite: bool, quiet: bool, shards: int,
                   ray_address: str, workers: int | None, extra: dict) -> None:
    from tremor.distributed import build_sharded, cluster, read_shards_manifest

    started = time.perf_counter()
    with cluster(ray_address):
        path = build_sharded(corpus, out, shards, encoder=encoder, index=index_spec, overwrite=overwrite,
                             workers=workers, progress=not quiet, **extra)
    manifest = read_shards_manifest(path)
    click.echo(f"built sharded {manifest['index_type']} index of {manifest['counts']['documents']} documents in "
               f"{len(manifest['shards'])} shards at {path} in {time.perf_counter() - started:.1f}s")


@index.command("info")
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--verify", is_flag=True,
              help="Also check the sha256 of every file the manifests name (arrays, encoder, documents, dense).")
def index_info(index_dir: Path, verify: bool) -> None:
    """Print an index's manifest (and check its integrity)."""
    from tremor.search import Searcher
    from tremor.search.integrity import stale_builds_report, verify_index

    if (Path(index_dir) / "shards.json").is_file():
        from tremor.distributed import read_shards_manifest
        from tremor.index.storage import load_arrays, read_manifest

        manifest = read_shards_manifest(index_dir)
        for entry in manifest["shards"]:  # every shard's arrays: present, right size (and checksums with --verify)
            shard = Path(index_dir) / entry["path"]
            load_arrays(shard, read_manifest(shard)["arrays"], verify=verify)
        manifest["bytes_on_disk"] = sum(p.stat().st_size for p in Path(index_dir).rglob("*") if p.is_file())
        click.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    if verify:
        verified, notes = verify_index(index_dir)
    searcher = Searcher.load(index_dir)
    manifest = dict(searcher.manifest)
    manifest["arrays"] = {name: {k: v for k, v in entry.items() if k != "sha256"}
                          for name, entry in manifest["arrays"].items()}
    manifest.pop("files", None)
    manifest["bytes_on_disk"] = sum(p.stat().st_size for p in Path(index_dir).rglob("*") if p.is_file())
    stale = stale_builds_report(index_dir)
    if stale:
        manifest["stale_build_directories"] = stale
    click.echo(json.dumps(manifest, indent=2, sort_keys=True))
    if stale:
        click.echo(f"{len(stale)} directories left by killed builds ({sum(s['bytes'] for s in stale):,} bytes) lie "
                   f"beside the index; the next build to {index_dir} removes them", err=True)
    if verify:
        for note in notes:
            click.echo(f"note: {note}", err=True)
        click.echo(f"verified: {verified} files", err=True)


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


def _check_seismic_flags(seismic: dict, manifest: dict, index_dir: Path) -> None:
    """Refuse Seismic search flags on another index type, naming the type found."""
    if seismic and manifest.get("index_type") != "seismic":
        raise TremorError(f"--query-cut/--heap-factor/--knn/--preset apply to Seismic indexes; {index_dir} is a "
                          f"{manifest.get('index_type')} index")


@cli.command("search")
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("queries", nargs=-1, required=False)
@click.option("-k", "--k", "k", default=10, show_default=True, help="Number of hits per query.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines output, one object per query.")
@click.option("--no-text", is_flag=True, help="Leave titles and texts out of the output (ids and scores only).")
@click.option("--topics", type=click.Path(path_type=Path), default=None,
              help="Queries from a file instead of the command line: JSONL (_id, text), TSV (id, text) or a BEIR "
                   "folder.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a TREC run file (qid Q0 docid rank score tag) instead of printing hits.")
@click.option("--run-tag", default="tremor", show_default=True, help="Tag in the run file's last column.")
@click.option("--param", "params", multiple=True, help="Search-time parameter key=value (repeatable).")
@click.option("--query-cut", type=int, default=None, help="Seismic: query terms whose posting lists are visited.")
@click.option("--heap-factor", type=float, default=None,
              help="Seismic: skip a block when its summary score < heap_factor × the k-th best score so far.")
@click.option("--knn", "n_knn", type=int, default=None,
              help="Seismic: neighbours of each result to score (needs an index built with --knn).")
@click.option("--filter-ids", "filter_ids", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Return only documents whose ids are listed in this file (one id per line).")
@click.option("--preset", type=click.Choice(["recall90", "recall95", "recall99"]), default=None,
              help="Seismic: a tuned query_cut/heap_factor setting for that recall@10 (explicit flags override it).")
@hybrid_options
def search(index_dir: Path, queries: tuple[str, ...], k: int, as_json: bool, no_text: bool, topics: Path | None,
           output: Path | None, run_tag: str, params: tuple[str, ...], query_cut: int | None,
           heap_factor: float | None, n_knn: int | None, filter_ids: Path | None = None,
           preset: str | None = None, **pipeline_options) -> None:
    """Search an index directory with text queries given as arguments or in a --topics file (sparse, dense or
    hybrid, with or without PRF); print the hits, or write a TREC run with --output."""
    from tremor.search import Searcher

    query_ids, queries = _search_queries(queries, topics)
    searchable = [i for i, text in enumerate(queries) if text.strip()] if topics is not None else \
        list(range(len(queries)))  # a blank topic finds nothing; a blank argument is an error
    with_text = not (no_text or output is not None)
    search_params = _parse_params(params)
    seismic = {key: value for key, value in (("query_cut", query_cut), ("heap_factor", heap_factor),
                                              ("n_knn", n_knn), ("preset", preset)) if value is not None}
    config = pipeline_config(pipeline_options)
    if config is None:
        searcher = Searcher.load(index_dir)
        _check_seismic_flags(seismic, searcher.manifest, index_dir)
        search_params.update(seismic)
        if filter_ids is not None:
            from tremor.index.segments import read_id_file

            search_params["allow"] = read_id_file(filter_ids)
        found = searcher.batch_search([queries[i] for i in searchable], k=k, with_text=with_text,
                                      **search_params) if searchable else []
    else:
        if filter_ids is not None:
            raise TremorError("--filter-ids applies to sparse search (not with --hybrid, --dense or --prf)")
        from tremor.search.pipeline import HybridSearcher

        config.check()
        hybrid = HybridSearcher.load(index_dir, dense=config.retriever != "sparse", model=pipeline_options["model"],
                                     device=pipeline_options["device"])
        _check_seismic_flags(seismic, hybrid.sparse.manifest, index_dir)
        search_params.update(seismic)
        hybrid.sparse.search_params.update(search_params)
        found = hybrid.batch_search([queries[i] for i in searchable], k=k, config=config,
                                    with_text=with_text) if searchable else []
    results: list[list] = [[] for _ in queries]
    for i, hits in zip(searchable, found, strict=True):
        results[i] = hits
    if output is not None:
        from tremor.eval.runs import write_run

        run = {qid: {hit.id: hit.score for hit in hits} for qid, hits in zip(query_ids, results, strict=True)}
        write_run(output, run, tag=run_tag)
        click.echo(f"wrote {sum(len(h) for h in results)} hits for {len(queries)} queries to {output}", err=True)
        return
    width = shutil.get_terminal_size((120, 20)).columns
    for qid, query, hits in zip(query_ids, queries, results, strict=True):
        if as_json:
            record = {"query": query, "hits": [h.to_dict() for h in hits]}
            if topics is not None:
                record = {"query_id": qid, **record}
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            _print_hits(query, hits, width)


def _search_queries(queries: tuple[str, ...], topics: Path | None) -> tuple[list[str], list[str]]:
    """(query ids, texts) from the command line (ids 1, 2, ...) or a topics file (its own ids)."""
    if topics is None:
        if not queries:
            raise TremorError("give one or more queries, or --topics FILE")
        return [str(i) for i in range(1, len(queries) + 1)], list(queries)
    if queries:
        raise TremorError("give queries as arguments or with --topics, not both")
    from tremor.corpus import read_queries

    if not topics.exists():
        raise TremorError(f"{topics}: no such topics file")
    read = read_queries(topics)
    if not read:
        raise TremorError(f"{topics}: the topics file has no queries")
    return [q.id for q in read], [q.text for q in read]


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _eval_filter(filter_ids: Path | None, peers: tuple[str, ...], compare: bool, pipeline_options: dict) -> dict:
    """``{"allow": ids}`` from an eval's --filter-ids file ({} without one); peers and pipelines cannot filter."""
    if filter_ids is None:
        return {}
    if peers or compare:
        raise TremorError("--filter-ids applies to tremor systems; peer engines (--peer, --compare) cannot filter")
    if pipeline_config(pipeline_options) is not None:
        raise TremorError("--filter-ids applies to sparse search (not with --hybrid, --dense or --prf)")
    from tremor.index.segments import read_id_file

    ids = read_id_file(filter_ids)
    if not ids:
        raise TremorError(f"{filter_ids}: the id file lists no ids")
    return {"allow": ids}


@cli.command("eval")
@click.option("--dataset", required=True, help="BEIR folder or ir_datasets id (e.g. beir/scifact/test; "
              "downloaded by ir_datasets, so only where a network exists).")
@click.option("--split", default="test", show_default=True, help="Qrels split of a BEIR folder.")
@click.option("--queries", "queries_file", default=None, help="Queries file, overriding the dataset's own.")
@click.option("--qrels", "qrels_file", default=None, help="Qrels file (BEIR TSV or TREC), overriding the dataset's.")
@click.option("--index", "index_dirs", multiple=True, type=click.Path(path_type=Path),
              help="A tremor index directory to evaluate (repeatable).")
@click.option("--encoder", "encoders", multiple=True,
              help="Build an index of the corpus with this encoder ('bm25', 'splade-tiny' or a model directory) and "
                   "evaluate it "
                   "(repeatable).")
@click.option("--index-type", "index_spec", default="exact", show_default=True,
              help="Index spec for indexes built with --encoder.")
@click.option("--peer", "peers", multiple=True, type=click.Choice(["lucene-bm25", "bm25s"]),
              help="A peer engine built from the same corpus (repeatable; lucene-bm25 needs tremor[pyserini], "
                   "bm25s needs tremor[bm25s]).")
@click.option("--compare", is_flag=True,
              help="Also run tremor BM25 and, where pyserini and Java are installed, Lucene BM25; one table.")
@click.option("--param", "params", multiple=True, help="Search-time parameter key=value for tremor systems.")
@click.option("-k", "--k", "k", default=1000, show_default=True, help="Hits per query (BEIR: 1000).")
@click.option("--measure", "measures", multiple=True,
              help="ir_measures measure (repeatable; default nDCG@10 R@100 R@1000 RR@10 AP).")
@click.option("--keep-query-ids", is_flag=True, help="Keep hits whose id equals the query id (BEIR drops them).")
@click.option("--latency", is_flag=True, help="Also time the queries one at a time (k=10, one thread).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory [default: runs/<dataset>].")
@click.option("--keep-indexes", is_flag=True, help="Keep indexes built on the fly under OUT/indexes.")
@click.option("--plot", is_flag=True, help="Also write an nDCG@10 bar plot (OUT/ndcg10.png).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--filter-ids", "filter_ids", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Tremor systems retrieve only documents whose ids are listed in this file (one id per line).")
@click.option("--preset", type=click.Choice(["recall90", "recall95", "recall99"]), default=None,
              help="Seismic systems: a tuned query_cut/heap_factor setting for that recall@10 (--param overrides).")
@hybrid_options
def evaluate(dataset: str, split: str, queries_file: str | None, qrels_file: str | None,
             index_dirs: tuple[Path, ...], encoders: tuple[str, ...], index_spec: str, peers: tuple[str, ...],
             compare: bool, params: tuple[str, ...], k: int, measures: tuple[str, ...], keep_query_ids: bool,
             latency: bool, out: Path | None, keep_indexes: bool, plot: bool, quiet: bool,
             filter_ids: Path | None = None, preset: str | None = None, **pipeline_options) -> None:
    """Evaluate systems on a BEIR dataset: a TREC run and metrics JSON per system, and one Markdown table.

    With --hybrid / --dense / --prf, each --index directory is evaluated through that retrieval pipeline (the
    directory needs a dense index for --hybrid and --dense: see 'tremor index add-dense')."""
    from tremor.eval import SearcherRetriever, build_system, evaluate_system, load_dataset
    from tremor.eval.metrics import DEFAULT_MEASURES, parse_measures
    from tremor.eval.report import bar_plot, markdown_table, safe_name, write_system_outputs, write_text_atomic
    from tremor.eval.systems import PipelineRetriever, default_system_name

    measures = parse_measures(measures or DEFAULT_MEASURES)
    # (encoder, index spec, search parameters); --param belongs to the systems named here, not to --compare's baseline
    search_params = {"preset": preset} if preset is not None else {}
    search_params.update(_parse_params(params))
    filter_params = _eval_filter(filter_ids, peers, compare, pipeline_options)
    search_params.update(filter_params)
    to_build = [(encoder, index_spec, search_params) for encoder in encoders]
    peers = tuple(dict.fromkeys(peers))
    notes: list[str] = []
    if compare:
        if "bm25" not in [e.lower() for e in encoders]:
            to_build.append(("bm25", "exact", {}))
        if "lucene-bm25" not in peers:
            from tremor.eval.peers import unavailable_reason

            reason = unavailable_reason()
            if reason is None:
                peers += ("lucene-bm25",)
            else:
                notes.append(f"lucene-bm25 skipped: {reason}")
    if not (index_dirs or to_build or peers):
        raise TremorError("nothing to evaluate: give --index DIR, --encoder NAME, --peer NAME or --compare")
    data = load_dataset(dataset, split, queries_file, qrels_file)
    out = out or Path("runs") / safe_name(data.name)
    taken: set[str] = set()
    results = []
    with tempfile.TemporaryDirectory(prefix="tremor-eval-") as tmp:
        build_root = out / "indexes" if keep_indexes else Path(tmp)
        pipeline = pipeline_config(pipeline_options)
        if pipeline is None:
            systems = [SearcherRetriever.from_index(d, _unique(d.name, taken), **search_params) for d in index_dirs]
        else:
            label = pipeline.retriever + ("" if pipeline.prf == "none" else f"+prf-{pipeline.prf}")
            systems = [PipelineRetriever.from_index(d, pipeline, _unique(f"{d.name}-{label}", taken),
                                                    model=pipeline_options["model"], device=pipeline_options["device"],
                                                    **search_params) for d in index_dirs]
        for encoder, spec, encoder_params in to_build:
            name = _unique(default_system_name(encoder, spec), taken)
            systems.append(build_system(data, build_root / safe_name(name), encoder, spec, name,
                                        overwrite=keep_indexes, progress=not quiet, **encoder_params))
        for peer in peers:
            if peer == "bm25s":
                from tremor.eval.bm25s_peer import BM25SPeer

                systems.append(BM25SPeer.build(data.documents(), name=_unique(peer, taken)))
                continue
            from tremor.eval.peers import LuceneBM25

            systems.append(LuceneBM25.build(data.documents(), build_root / peer, overwrite=keep_indexes,
                                            name=_unique(peer, taken)))
        for system in systems:
            result = evaluate_system(system, data, k=k, measures=measures, remove_query_ids=not keep_query_ids,
                                     latency_k=10 if latency else None)
            files = write_system_outputs(out, result)
            results.append(result)
            if not quiet:
                click.echo(f"{result.system}: run {files['run']}, metrics {files['metrics']}", err=True)
    table = markdown_table(results)
    shown_k = max((r.k for r in results), default=k)  # k as searched: clamped to the largest document count
    header = f"{data.name} ({data.split}, {len(data.queries)} queries, top {shown_k})\n\n"
    write_text_atomic(out / "table.md", header + table)
    write_text_atomic(out / "summary.json", json.dumps([r.summary() for r in results], indent=2) + "\n")
    if plot:
        bar_plot(results, out / "ndcg10.png", title=f"nDCG@10 on {data.name}")
    click.echo(header + table, nl=False)
    for note in notes:
        click.echo(note, err=True)


@cli.command("encode")
@click.option("--encoder", "encoder_spec", required=True,
              help="Named model ('splade-tiny'), model directory or hub name (or 'bm25', fitted on the corpus, "
                   "for documents).")
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
    noun = "documents" if side == "document" else "queries"
    click.echo(f"encoded {len(texts)} {noun} ({vectors.nnz / len(texts):.1f} non-zeros each) in {seconds:.1f}s "
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


@cli.command("serve")
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("more", nargs=-1, metavar="[NAME=DIR]...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless you mean it).")
@click.option("--port", default=8000, show_default=True, help="Port to bind.")
@click.option("--api-key", envvar="TREMOR_API_KEY", default=None,
              help="Require this key (X-API-Key header) on every request [env: TREMOR_API_KEY].")
@click.option("--max-k", default=1000, show_default=True, help="Largest k (and pipeline depth) a request may ask.")
@click.option("--max-query-chars", default=1000, show_default=True, help="Longest query text.")
@click.option("--max-batch", default=64, show_default=True, help="Most queries in one batch request.")
@click.option("--max-body", "max_body_bytes", default=1 << 20, show_default=True, help="Largest request body, bytes.")
@click.option("--timeout", "timeout_s", default=10.0, show_default=True, help="Per-request time limit, seconds.")
@click.option("--workers", type=int, default=None, help="Search threads [default: 2 per core, at least 4].")
@click.option("--max-waiting", default=256, show_default=True, help="Searches queued before new ones get 429.")
@click.option("--processes", default=1, show_default=True,
              help="Server processes sharing the port (each maps the same index files; each has its own threads).")
@click.option("--device", default="cpu", show_default=True, help="Device for a dense side's query encoder.")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--read-only", is_flag=True,
              help="Refuse POST /documents and DELETE /documents/{id} (writes also need --api-key).")
def serve(index_dir: Path, more: tuple[str, ...], host: str, port: int, api_key: str | None, max_k: int,
          max_query_chars: int, max_batch: int, max_body_bytes: int, timeout_s: float, workers: int | None,
          max_waiting: int, processes: int, device: str, access_log: bool, read_only: bool = False) -> None:
    """Serve index directories over HTTP: a JSON search API and a web page at /."""
    import dataclasses
    import os

    try:
        import uvicorn

        from tremor.serve import ServeLimits, create_app
        from tremor.serve.limits import is_loopback
    except ImportError as exc:
        raise TremorError(f"serving needs the 'serve' extra (pip install 'tremor[serve]'): {exc}") from None
    indexes: dict[str, Path] = {}
    first = str(index_dir)
    if "=" in first and not index_dir.is_dir():
        more = (first, *more)
    else:
        indexes[index_dir.resolve().name or "index"] = index_dir
    for pair in more:
        name, sep, directory = pair.partition("=")
        if not sep or not name.strip() or not directory.strip():
            raise TremorError(f"expected NAME=DIR for an extra index, got '{pair}'")
        if name.strip() in indexes:
            raise TremorError(f"index name '{name.strip()}' is used twice")
        indexes[name.strip()] = Path(directory.strip())
    workers = workers or max(4, 2 * (os.cpu_count() or 1))
    try:
        limits = ServeLimits(max_k=max_k, max_query_chars=max_query_chars, max_batch=max_batch,
                             max_body_bytes=max_body_bytes, timeout_s=timeout_s, workers=workers,
                             max_waiting=max_waiting)
        limits.check()
    except ValueError as exc:
        raise TremorError(str(exc)) from None
    if not is_loopback(host):
        click.echo(f"warning: binding {host} makes the index searchable from other machines"
                   f"{'' if api_key else ' by anyone (no --api-key set)'}", err=True)
    if processes < 1:
        raise TremorError("--processes must be at least 1")
    # opens and checks every index here
    app = create_app(indexes, limits, api_key=api_key, device=device, read_only=read_only)
    log_level = "info" if access_log else "warning"
    click.echo(f"serving {', '.join(indexes)} on http://{host}:{port}/ ({processes} process"
               f"{'es' if processes > 1 else ''} × {workers} search threads)", err=True)
    if processes == 1:
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level=log_level,
                    timeout_graceful_shutdown=5)
        return
    from tremor.serve.app import CONFIG_ENV
    from tremor.serve.limits import API_KEY_ENV

    del app
    os.environ[CONFIG_ENV] = json.dumps({"indexes": {name: str(path.resolve()) for name, path in indexes.items()},
                                         "limits": dataclasses.asdict(limits), "device": device,
                                         "read_only": read_only})
    if api_key:
        os.environ[API_KEY_ENV] = api_key
    from tremor.serve.processes import run_processes

    run_processes(processes, host, port, log_level, access_log)


@index.command("add")
@click.argument("index_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--corpus", required=True, help="BEIR folder, JSONL or TSV file, or ir_datasets id.")
@click.option("--encoder", default="bm25", show_default=True,
              help="For a new index only: 'bm25', or a model directory / hub name.")
@click.option("--index", "index_spec", default="exact", show_default=True,
              help="For a new index only: index type and build parameters, e.g. 'seismic,lambda=3000'.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def index_add(index_dir: Path, corpus: str, encoder: str, index_spec: str, quiet: bool) -> None:
    """Add (or replace, by id) documents of a corpus in a live index as one new segment, and commit."""
    from tremor.corpus import read_documents
    from tremor.index.segments import IndexWriter

    started = time.perf_counter()
    documents = list(read_documents(corpus))
    with IndexWriter(index_dir, encoder=encoder, index=index_spec, progress=not quiet) as writer:
        added = writer.add(documents)
        generation = writer.commit()
        live = len(writer)
    click.echo(f"added {added} documents to {index_dir} (commit {generation}, {live} live documents) in "
               f"{time.perf_counter() - started:.1f}s")


@index.command("delete")
@click.argument("index_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--ids", "ids_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File of document ids to delete, one per line.")
def index_delete(index_dir: Path, ids_file: Path) -> None:
    """Delete documents by id from an index, and commit (unknown ids are reported, not an error)."""
    from tremor.index.segments import IndexWriter, read_id_file

    if not index_dir.is_dir():
        raise TremorError(f"{index_dir}: no such index directory")
    ids = read_id_file(ids_file)
    with IndexWriter(index_dir) as writer:
        found = writer.delete(ids)
        generation = writer.commit()
        live = len(writer)
    click.echo(f"deleted {found} of {len(ids)} ids ({len(ids) - found} not found) from {index_dir} "
               f"(commit {generation}, {live} live documents)")


@index.command("merge")
@click.argument("index_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tiered", is_flag=True, help="Only merge what the tiered policy picks (small segments of one tier, "
              "segments mostly deleted) instead of everything into one segment.")
@click.option("--keep-statistics", is_flag=True,
              help="BM25: keep every document's vector as it was encoded (and a fixed-statistics index its "
                   "statistics) instead of re-encoding the merged corpus under its current statistics.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def index_merge(index_dir: Path, tiered: bool, keep_statistics: bool, quiet: bool) -> None:
    """Merge a live index's segments (by default all into one, dropping deleted documents), and commit."""
    from tremor.index.segments import IndexWriter

    if not index_dir.is_dir():
        raise TremorError(f"{index_dir}: no such index directory")
    started = time.perf_counter()
    with IndexWriter(index_dir, progress=not quiet) as writer:
        before = len(writer.segments)
        generation = writer.merge(force=not tiered, refresh_statistics=False if keep_statistics or tiered else None)
        after = len(writer.segments)
    click.echo(f"merged {before} segments into {after} in {index_dir} (commit {generation}) in "
               f"{time.perf_counter() - started:.1f}s")


def main() -> None:
    """Console entry point."""
    cli(prog_name="tremor")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
