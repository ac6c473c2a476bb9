"""Damaged indexes, bad flags and races: each case a clear TremorError (or a correct answer), never a crash, a
silently wrong answer or lost data."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from tiny_dense import tiny_bert

import tremor
from tremor.corpus import Document, read_documents
from tremor.errors import IndexFormatError, InputError, QueryError, TremorError, VocabularyMismatchError
from tremor.search import Searcher
from tremor.sparse import SparseVectors

ROOT = Path(__file__).resolve().parents[1]
QUERY = "cat mat park earthquake seismic waves"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tremor", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


@pytest.fixture()
def exact_index(tmp_path, tiny_corpus) -> Path:
    return tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)


@pytest.fixture()
def seismic_index(tmp_path, tiny_corpus) -> Path:
    return tremor.build_index(tiny_corpus, tmp_path / "sidx", index="seismic,lambda=inf,summary_bits=8",
                              progress=False)


@pytest.fixture()
def seismic4_index(tmp_path, tiny_corpus) -> Path:
    return tremor.build_index(tiny_corpus, tmp_path / "sidx4", index="seismic,lambda=inf,summary_bits=4",
                              progress=False)


def rewrite_array(index: Path, name: str, change) -> None:
    """Apply ``change`` to the array in place on disk (same size, so only the load-time checks can tell)."""
    path = index / "arrays" / f"{name}.npy"
    array = np.load(path)
    change(array)
    np.save(path, array)


# ---------------------------------------------------------------------------------------------- 1. damaged arrays
@pytest.mark.parametrize(("kind", "name", "change"), [
    ("exact", "post_docs", lambda a: a.__setitem__(3, 10**8)),
    ("exact", "post_docs", lambda a: a.__setitem__(0, -5)),
    ("exact", "post_indptr", lambda a: a.__setitem__(2, 10**6)),
    ("exact", "post_indptr", lambda a: a.__setitem__(1, -(10**6))),
    ("seismic", "posting_docs", lambda a: a.__setitem__(0, 10**8)),
    ("seismic", "block_indptr", lambda a: a.__setitem__(1, 10**6)),
    ("seismic", "doc_components", lambda a: a.__setitem__(0, 65000)),
    ("seismic", "summary_keys", lambda a: a.__setitem__(0, a[0] | np.asarray(0x00FF, a.dtype))),
    ("seismic", "summary_bucket_indptr", lambda a: a.__setitem__(1, 10**6)),
    ("seismic4", "summary_keys", lambda a: a.__setitem__(0, a[0] | np.asarray(0x00F0, a.dtype))),
    ("seismic4", "summary_bucket_offsets", lambda a: a.__setitem__(1, 60000)),
    ("seismic4", "summary_bucket_anchor", lambda a: a.__setitem__(-1, 10**6)),
    ("seismic4", "summary_table_start", lambda a: a.__setitem__(1, a[1] + 1)),
])
def test_damaged_arrays_are_a_clear_error_not_a_crash(request, kind, name, change):
    index = request.getfixturevalue(f"{kind}_index")
    rewrite_array(index, name, change)
    result = run_cli("search", str(index), QUERY, "-k", "6")
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # 139 (SIGSEGV) before the checks
    assert f"arrays/{name}.npy" in result.stderr and "corrupted" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["post_values", "doc_values"])
def test_non_finite_weights_rejected(exact_index, name):
    rewrite_array(exact_index, name, lambda a: a.__setitem__(1, np.nan))
    with pytest.raises(IndexFormatError, match=f"arrays/{name}.npy: value nan .* not finite"):
        Searcher.load(exact_index)


def test_seismic_nan_and_knn_rows_rejected(tmp_path, tiny_corpus):
    index = tremor.build_index(tiny_corpus, tmp_path / "knn", index="seismic,lambda=inf,knn=2", progress=False)
    rewrite_array(index, "knn_neighbors", lambda a: a.__setitem__((0, 0), 99))
    with pytest.raises(IndexFormatError, match=r"knn_neighbors.*out of range"):
        Searcher.load(index)
    index2 = tremor.build_index(tiny_corpus, tmp_path / "nan", index="seismic,lambda=inf", progress=False)
    rewrite_array(index2, "block_scale", lambda a: a.__setitem__(0, np.inf))
    with pytest.raises(IndexFormatError, match=r"block_scale.*not finite"):
        Searcher.load(index2)


def test_undamaged_indexes_pass_the_checks(exact_index, seismic_index):
    exact = Searcher.load(exact_index).search(QUERY, k=6)
    approx = Searcher.load(seismic_index).search(QUERY, k=6, heap_factor=1.0, query_cut=100)
    assert [h.id for h in exact] == [h.id for h in approx] and len(exact) > 2


# ------------------------------------------------------------------------------------------- 2. --overwrite target
def test_overwrite_refuses_a_directory_that_is_not_a_tremor_index(tmp_path, tiny_corpus):
    folder = tmp_path / "my-files"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "manifest.json").write_text(json.dumps({"name": "a web app"}))
    with pytest.raises(TremorError, match="not a tremor-index manifest"):
        tremor.build_index(tiny_corpus, folder, overwrite=True, progress=False)
    result = run_cli("index", "build", "--corpus", str(tiny_corpus), "--out", str(folder), "--overwrite", "--quiet")
    assert result.returncode == 1 and "replaces only a directory tremor wrote" in result.stderr
    assert (folder / "thesis.tex").read_text() == "years of work"
    (folder / "manifest.json").unlink()
    with pytest.raises(TremorError, match=r"no manifest\.json"):
        tremor.build_index(tiny_corpus, folder, overwrite=True, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]
    index = tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)
    assert tremor.build_index(tiny_corpus, index, overwrite=True, progress=False) == index  # an index: replaced


# -------------------------------------------------------------------------------------------------- 3. doc store
def test_missing_docstore_refused_instead_of_numbers_as_ids(exact_index):
    (exact_index / "docstore.sqlite").unlink()
    with pytest.raises(IndexFormatError, match=r"docstore.sqlite.* missing"):
        Searcher.load(exact_index)
    result = run_cli("search", str(exact_index), QUERY)
    assert result.returncode == 1 and "docstore.sqlite" in result.stderr


def test_corrupt_docstore_is_an_index_error_not_a_sqlite_traceback(exact_index):
    store = exact_index / "docstore.sqlite"
    data = bytearray(store.read_bytes())
    data[:100] = b"\x00" * 100  # the SQLite header
    store.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="document store unreadable"):
        Searcher.load(exact_index)
    result = run_cli("search", str(exact_index), QUERY)
    assert result.returncode == 1 and "document store unreadable" in result.stderr
    assert "Traceback" not in result.stderr and "sqlite3." not in result.stderr


def test_docstore_damaged_after_its_header_is_an_index_error_at_search(exact_index):
    store = exact_index / "docstore.sqlite"
    connection = sqlite3.connect(store)
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    data = bytearray(store.read_bytes())
    data[page_size:] = b"\xff" * (len(data) - page_size)  # every page after the first
    store.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError):
        Searcher.load(exact_index).search(QUERY)


# ---------------------------------------------------------------------------------------------- 4. the dense side
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def test_overwrite_keeps_matching_dense_and_refuses_to_drop_it_silently(tmp_path, tiny_corpus, tiny_model):
    from tremor.search.dense import add_dense

    index = tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)
    add_dense(index, model=tiny_model, device="cpu", progress=False)
    vectors = np.load(index / "dense" / "vectors.npy")
    # same documents, another index type: the dense side is carried over
    tremor.build_index(tiny_corpus, index, index="seismic", overwrite=True, progress=False)
    assert np.array_equal(np.load(index / "dense" / "vectors.npy"), vectors)
    assert Searcher.load(index).manifest["index_type"] == "seismic"
    # other documents: refused before any encoding, the old index untouched
    other = [*list(read_documents(tiny_corpus))[:4], Document("new", "a new document about cats")]
    with pytest.raises(TremorError, match="--drop-dense"):
        tremor.build_index(other, index, overwrite=True, progress=False)
    result = run_cli("index", "build", "--corpus", str(tiny_corpus), "--out", str(index), "--overwrite", "--quiet")
    assert result.returncode == 0 and "kept" in result.stderr
    changed = tmp_path / "changed.jsonl"
    changed.write_text(tiny_corpus.read_text().replace("Cats like warm mats.", "Cats like cold mats."))
    result = run_cli("index", "build", "--corpus", str(changed), "--out", str(index), "--overwrite", "--quiet")
    assert result.returncode == 1 and "--drop-dense" in result.stderr and (index / "dense").is_dir()
    result = run_cli("index", "build", "--corpus", str(changed), "--out", str(index), "--overwrite", "--drop-dense",
                     "--quiet")
    assert result.returncode == 0 and not (index / "dense").exists()


# ------------------------------------------------------------------------------------------------ 5. k is clamped
@pytest.mark.parametrize("k", [10**9, 2 * 10**9, 10**20])
def test_huge_k_is_clamped_to_the_document_count(exact_index, seismic_index, k):
    for path in (exact_index, seismic_index):
        searcher = Searcher.load(path)
        _, numbers = searcher.search_vectors(searcher.encode_queries([QUERY]), k=k)
        assert numbers.shape == (1, 6)
        assert len(searcher.search(QUERY, k=k)) == int((numbers >= 0).sum())


def test_huge_k_from_the_cli_and_eval(exact_index, tmp_path):
    result = run_cli("search", str(exact_index), QUERY, "-k", str(10**20), "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["hits"]) == 6
    with pytest.raises(QueryError, match="k must be an integer"):
        Searcher.load(exact_index).search(QUERY, k=2.5)
    dataset = write_dataset(tmp_path / "data")
    from tremor.eval import SearcherRetriever, evaluate_system, load_dataset

    result = evaluate_system(SearcherRetriever.from_index(exact_index), load_dataset(dataset), k=10**20)
    assert result.k == 6


def write_dataset(folder: Path, doc_ids: tuple[str, ...] = ("d1", "d5")) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(Path(__file__).parent / "data" / "tiny_corpus.jsonl", folder / "corpus.jsonl")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "cats on mats"}\n'
                                          '{"_id": "q2", "text": "seismic waves"}\n')
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\t{doc_ids[0]}\t1\n"
                                               f"q2\t{doc_ids[1]}\t1\n")
    return folder


# --------------------------------------------------------------------------------------- 6. loads racing rebuilds
READER = textwrap.dedent("""
    import json, sys, time
    from tremor.errors import TremorError
    from tremor.search import Searcher
    path, stop, answers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    counts = {"loads": 0, "errors": [], "wrong": []}
    deadline = time.monotonic() + 60
    import os
    while not os.path.exists(stop) and time.monotonic() < deadline:
        try:
            hits = Searcher.load(path).search("cat park earthquake", k=3)
            got = [[h.id, round(h.score, 4), h.title] for h in hits]
            if got not in answers:
                counts["wrong"].append(got)
        except TremorError as exc:
            counts["errors"].append(str(exc))
        except Exception as exc:
            counts["errors"].append(f"RAW {type(exc).__name__}: {exc}")
        counts["loads"] += 1
    print(json.dumps(counts))
""")


def test_loads_see_one_complete_index_while_another_process_rebuilds_it(tmp_path, tiny_corpus):
    """Readers in two processes load and search while this process rebuilds the same path 60 times, alternating
    two corpora: every load gives one of the two right answers, with no error."""
    docs_a = list(read_documents(tiny_corpus))
    docs_b = [Document(f"b-{d.id}", d.text + " cat park", d.title + " B") for d in docs_a]
    path = tmp_path / "idx"
    answers = []
    for docs in (docs_b, docs_a):
        tremor.build_index(docs, path, overwrite=True, progress=False)
        answers.append([[h.id, round(h.score, 4), h.title] for h in Searcher.load(path).search("cat park earthquake",
                                                                                                k=3)])
    assert answers[0] != answers[1]
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop), json.dumps(answers)],
                                stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    try:
        Searcher.load(path)
        time.sleep(2.0)  # let the readers import and start loading
        for i in range(60):
            tremor.build_index(docs_b if i % 2 == 0 else docs_a, path, overwrite=True, progress=False)
    finally:
        stop.touch()
    results = [json.loads(reader.communicate(timeout=120)[0]) for reader in readers]
    print(f"loads per reader during 60 rebuilds: {[r['loads'] for r in results]}")
    assert all(r["loads"] > 0 for r in results)
    assert [r["wrong"] for r in results] == [[], []]
    assert [r["errors"] for r in results] == [[], []]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".idx.")]  # nothing left beside it


# ------------------------------------------------------------------------------------ 7. --verify covers every file
@pytest.mark.parametrize("victim", ["docstore.sqlite", "encoder/df.npy", "encoder/vocab.json",
                                    "dense/vectors.npy"])
def test_verify_checks_every_file_the_manifests_name(tmp_path, tiny_corpus, tiny_model, victim):
    from tremor.search.dense import add_dense

    index = tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)
    add_dense(index, model=tiny_model, device="cpu", progress=False)
    result = run_cli("index", "info", str(index), "--verify")
    assert result.returncode == 0 and "verified: 11 files" in result.stderr  # 6 arrays, 4 files, dense vectors
    path = index / victim
    data = bytearray(path.read_bytes())
    position = len(data) - 3 if victim.endswith(".npy") else len(data) // 2
    data[position] ^= 0x01  # a low bit: sizes and structure unchanged
    path.write_bytes(bytes(data))
    result = run_cli("index", "info", str(index), "--verify")
    assert result.returncode == 1 and "fails its checksum" in result.stderr and Path(victim).name in result.stderr


# ---------------------------------------------------------------------------- 8. leftovers of killed builds
def test_stale_build_directories_listed_and_removed_by_the_next_build(tmp_path, tiny_corpus):
    index = tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)
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
        tremor.build_index({str(tiny_corpus)!r}, {str(index)!r}, overwrite=True, progress=False)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout.readline().strip() == "wrote"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".idx.tmp-")]
    assert len(stale) == 1
    foreign = tmp_path / ".idx.tmp-notours"  # same pattern, not written by tremor: never touched
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    result = run_cli("index", "info", str(index))
    assert result.returncode == 0 and "left by killed builds" in result.stderr
    listed = json.loads(result.stdout)["stale_build_directories"]
    assert [entry["path"] for entry in listed] == [str(stale[0])] and listed[0]["bytes"] > 0
    tremor.build_index(tiny_corpus, index, overwrite=True, progress=False)
    assert not stale[0].exists() and (foreign / "keep.txt").read_text() == "mine"
    assert "stale_build_directories" not in json.loads(run_cli("index", "info", str(index)).stdout)


# --------------------------------------------------------------------------------------------- 9. smaller items
def test_corrupt_npy_header_is_an_index_error(exact_index):
    path = exact_index / "arrays" / "post_docs.npy"
    data = bytearray(path.read_bytes())
    data[20:30] = b"(((((((((("  # inside the header's Python literal
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"post_docs\.npy is unreadable"):
        Searcher.load(exact_index)


def test_format_version_as_a_string_is_named_as_such(exact_index):
    manifest = json.loads((exact_index / "manifest.json").read_text())
    manifest["format_version"] = "1"
    (exact_index / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=r"format_version is '1', a str; expected the integer 1"):
        Searcher.load(exact_index)


def test_search_path_that_is_a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(IndexFormatError, match="is a file, not an index directory"):
        Searcher.load(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".tsv"])
def test_non_utf8_byte_is_located_by_line(tmp_path, suffix):
    path = tmp_path / f"corpus{suffix}"
    good = '{"_id": "a", "text": "fine"}\n' if suffix == ".jsonl" else "a\tfine\n"
    bad = '{"_id": "b", "text": "caf\xe9"}\n' if suffix == ".jsonl" else "b\tcaf\xe9\n"
    path.write_bytes(good.encode() + bad.encode("latin-1"))
    with pytest.raises(InputError, match="line 2") as info:
        list(read_documents(path))
    assert info.value.line == 2 and "0xe9" in str(info.value)


def test_depth_zero_is_named_as_depth(exact_index):
    result = run_cli("search", str(exact_index), QUERY, "--prf", "sparse", "--depth", "0")
    assert result.returncode == 1 and "depth (--depth" in result.stderr and "k must" not in result.stderr


def test_quiet_build_prints_no_seismic_progress(tmp_path, tiny_corpus):
    result = run_cli("index", "build", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "s"), "--index",
                     "seismic", "--quiet")
    assert result.returncode == 0 and result.stderr == ""


def test_query_vectors_of_another_vocabulary_size_refused(exact_index):
    searcher = Searcher.load(exact_index)
    size = searcher.index.vocab_size
    for other in (size - 1, size + 5):
        queries = SparseVectors.from_dicts([{0: 1.0}], vocab_size=other)  # no vocabulary id
        with pytest.raises(VocabularyMismatchError, match=f"{other} terms, the index {size}"):
            searcher.search_vectors(queries, k=3)


@pytest.mark.parametrize(("query", "message"), [(None, "NoneType"), (123, "int"), (["a"], "list")])
def test_search_of_a_non_string_says_so(exact_index, query, message):
    with pytest.raises(QueryError, match=f"query string \\(got {message}\\)"):
        Searcher.load(exact_index).search(query)
    with pytest.raises(QueryError, match=f"query 0 is a {message}"):
        Searcher.load(exact_index).batch_search([query])


def test_eval_of_an_index_of_another_corpus_is_refused(exact_index, tmp_path):
    from tremor.eval import SearcherRetriever, evaluate_system, load_dataset

    system = SearcherRetriever.from_index(exact_index)
    with pytest.raises(TremorError, match="none of the 2 documents judged"):
        evaluate_system(system, load_dataset(write_dataset(tmp_path / "other", ("x1", "x2"))))
    with pytest.warns(UserWarning, match="only 1 of the 3 documents judged"):
        data = write_dataset(tmp_path / "partly", ("d1", "x2"))
        with open(data / "qrels" / "test.tsv", "a") as handle:
            handle.write("q2\tx3\t1\n")
        evaluate_system(system, load_dataset(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_system(system, load_dataset(write_dataset(tmp_path / "same")))


# ------------------------------------------------------------------------------------- 10. README and model names
def test_readme_examples_are_consistent():
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        if "--param query_cut" in line and "tremor eval" in line:
            index = line.split("--index")[1].split()[0]
            assert "seismic" in index, f"query_cut is a Seismic parameter: {line}"
    python_out = readme.split('tremor.build_index("../shared/data/beir/scifact", "')[1].split('"')[0]
    cli_builds = [line.split("--out")[1].split()[0] for line in readme.splitlines()
                  if line.startswith("tremor index build") and "--corpus ../shared/data/beir/scifact --encoder bm25 "
                  in line and "--overwrite" not in line]
    assert cli_builds and python_out not in cli_builds, "the CLI build would fail with 'already exists'"


def test_missing_model_path_fails_without_waiting_on_the_hub(tmp_path, monkeypatch):
    from tremor.encoders.hub import downloads_possible

    if downloads_possible():
        pytest.skip("the hub is reachable here")
    import huggingface_hub.file_download as download

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was asked although it cannot be reached")

    monkeypatch.setattr(download, "get_hf_file_metadata", no_network)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TremorError, match="cannot load 'models/splade'"):
        tremor.build_index([Document("a", "text")], tmp_path / "idx", encoder="models/splade", progress=False)


# --------------------------------------------------------------------------------- 11. topics files and run files
def test_search_topics_to_a_trec_run_and_json_without_texts(exact_index, tmp_path):
    from tremor.eval.runs import read_run

    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tcats on mats\nq2\tseismic waves\nq3\t \n")
    run_file = tmp_path / "run.trec"
    result = run_cli("search", str(exact_index), "--topics", str(topics), "--output", str(run_file), "-k", "3")
    assert result.returncode == 0, result.stderr
    run = read_run(run_file)
    searcher = Searcher.load(exact_index)
    for qid, text in (("q1", "cats on mats"), ("q2", "seismic waves")):
        hits = searcher.search(text, k=3)
        assert list(run[qid]) == [h.id for h in hits]
        assert np.allclose(list(run[qid].values()), [h.score for h in hits])
    assert "q3" not in run  # a blank topic finds nothing
    result = run_cli("search", str(exact_index), "--topics", str(topics), "--json", "--no-text", "-k", "2")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["query_id"] for r in records] == ["q1", "q2", "q3"]
    assert set(records[0]["hits"][0]) == {"rank", "id", "score"}
    result = run_cli("search", str(exact_index))
    assert result.returncode == 1 and "--topics" in result.stderr
