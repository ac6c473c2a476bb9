"""Reading documents, queries and relevance judgements from the forms users have them in.

Accepted everywhere a corpus is asked for: a BEIR folder (corpus.jsonl[.gz], queries.jsonl[.gz], qrels/<split>.tsv),
a JSONL file (``_id``/``id``/``docid``, ``title``, ``text``/``contents``), a TSV file (id, text or id, title, text),
or an ir_datasets id such as ``beir/scifact/test``. Everything is normalized at this edge into ``Document`` and
``Query`` records; malformed input raises ``InputError`` naming file, line and field.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tremor.errors import InputError, TremorError

ID_FIELDS = ("_id", "id", "docid", "doc_id", "query_id", "qid")
TEXT_FIELDS = ("text", "contents", "body", "query")


@dataclass(frozen=True)
class Document:
    """One document: its external id, title (may be empty) and body text."""

    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """Title and text joined, the way BEIR baselines index them."""
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Query:
    id: str
    text: str


Qrels = dict[str, dict[str, int]]


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


@contextlib.contextmanager
def _utf8_lines(path: Path) -> Iterator[Iterator[str]]:
    """The file's lines, decoded one at a time, so a byte that is not UTF-8 is reported with its line number."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as handle:
        def lines() -> Iterator[str]:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not UTF-8 (save the "
                                     "file as UTF-8)", file=path, line=line_no) from None

        yield lines()


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz", f"{stem}.tsv", f"{stem}.tsv.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def is_local(source: str | Path) -> bool:
    return Path(source).exists()


def _pick(record: dict, names: tuple[str, ...]) -> tuple[str | None, object]:
    for name in names:
        if name in record:
            return name, record[name]
    return None, None


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with _utf8_lines(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"invalid JSON ({exc.msg} at column {exc.colno})", file=path,
                                     line=line_no) from None
                if not isinstance(record, dict):
                    raise InputError("expected a JSON object", file=path, line=line_no)
                yield line_no, record
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc}", file=path) from None


def _record_id(record: dict, path: Path, line_no: int) -> str:
    name, value = _pick(record, ID_FIELDS)
    if name is None:
        raise InputError(f"missing id (one of {', '.join(ID_FIELDS)})", file=path, line=line_no, field="_id")
    if not isinstance(value, (str, int)) or (isinstance(value, str) and not value.strip()):
        raise InputError("id must be a non-empty string or an integer", file=path, line=line_no, field=name)
    return str(value)


def _record_text(record: dict, path: Path, line_no: int, names: tuple[str, ...] = TEXT_FIELDS) -> str:
    name, value = _pick(record, names)
    if name is None:
        raise InputError(f"missing text (one of {', '.join(names)})", file=path, line=line_no, field="text")
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {type(value).__name__}", file=path, line=line_no, field=name)
    return value


def _read_jsonl_documents(path: Path) -> Iterator[Document]:
    seen: set[str] = set()
    for line_no, record in _iter_jsonl(path):
        doc_id = _record_id(record, path, line_no)
        if doc_id in seen:
            raise InputError(f"duplicate document id '{doc_id}'", file=path, line=line_no, field="_id")
        seen.add(doc_id)
        title = record.get("title", "") or ""
        if not isinstance(title, str):
            raise InputError("expected a string", file=path, line=line_no, field="title")
        yield Document(doc_id, _record_text(record, path, line_no), title)


def _iter_tsv(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with _utf8_lines(path) as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield reader.line_num, [cell.rstrip("\r") for cell in row]
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read file: {exc}", file=path) from None


def _read_tsv_documents(path: Path) -> Iterator[Document]:
    seen: set[str] = set()
    for line_no, row in _iter_tsv(path):
        if line_no == 1 and row[0].lower() in ("id", "_id", "docid", "doc_id"):
            continue  # header
        if len(row) == 2:
            doc_id, title, text = row[0], "", row[1]
        elif len(row) == 3:
            doc_id, title, text = row
        else:
            raise InputError(f"expected 2 (id, text) or 3 (id, title, text) tab-separated columns, got {len(row)}",
                             file=path, line=line_no)
        if not doc_id.strip():
            raise InputError("empty id", file=path, line=line_no, field="id")
        if doc_id in seen:
            raise InputError(f"duplicate document id '{doc_id}'", file=path, line=line_no, field="id")
        seen.add(doc_id)
        yield Document(doc_id, text, title)


def _ir_dataset(dataset_id: str):
    try:
        import ir_datasets
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise TremorError("ir_datasets is not installed") from exc
    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        raise TremorError(f"'{dataset_id}' is neither an existing path nor a known ir_datasets id") from None


def _ir_datasets_call(dataset_id: str, what: str, fn):
    try:
        yield from fn()
    except TremorError:
        raise
    except Exception as exc:  # ir_datasets raises many kinds of errors when it cannot download
        raise TremorError(
            f"could not read the {what} of ir_datasets '{dataset_id}' ({type(exc).__name__}: {exc}). ir_datasets "
            "downloads data on first use; without a network, point at a local BEIR folder or JSONL file instead"
        ) from None


def _doc_from_ir(doc) -> Document:
    title = getattr(doc, "title", "") or ""
    text = getattr(doc, "text", None)
    if text is None:
        text = getattr(doc, "body", None) or getattr(doc, "default_text", lambda: "")()
    return Document(str(doc.doc_id), text, title)


def corpus_path(source: str | Path) -> Path:
    """The corpus file inside a BEIR folder, or the file itself."""
    path = Path(source)
    if path.is_dir():
        found = _find_file(path, "corpus")
        if found is None:
            raise InputError("no corpus.jsonl[.gz] or corpus.tsv[.gz] in this folder", file=path)
        return found
    return path


def read_documents(source: str | Path) -> Iterator[Document]:
    """Iterate over the documents of a BEIR folder, a JSONL or TSV file, or an ir_datasets id."""
    if not is_local(source):
        if isinstance(source, str) and "/" in source and not source.startswith((".", "/")):
            dataset = _ir_dataset(source)
            yield from (_doc_from_ir(d) for d in _ir_datasets_call(source, "documents", dataset.docs_iter))
            return
        raise InputError("no such file or folder", file=source)
    path = corpus_path(source)
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json")):
        yield from _read_jsonl_documents(path)
    elif name.endswith((".tsv", ".tsv.gz")):
        yield from _read_tsv_documents(path)
    else:
        raise InputError("unknown corpus format: expected .jsonl[.gz] or .tsv[.gz], or a BEIR folder", file=path)


def count_lines(path: Path) -> int | None:
    """Number of non-empty lines (for progress bars); None for non-local sources."""
    if not path.is_file():
        return None
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as handle:
        return sum(1 for line in handle if line.strip())


def read_queries(source: str | Path, ids: set[str] | None = None) -> list[Query]:
    """Queries from a BEIR folder (queries.jsonl[.gz]), a JSONL/TSV file, or an ir_datasets id; ``ids`` keeps only
    those query ids (BEIR keeps all splits' queries in one file)."""
    queries: list[Query] = []
    if not is_local(source):
        dataset = _ir_dataset(str(source))
        for q in _ir_datasets_call(str(source), "queries", dataset.queries_iter):
            text = getattr(q, "text", None) or getattr(q, "default_text", lambda: "")()
            queries.append(Query(str(q.query_id), text))
    else:
        path = Path(source)
        if path.is_dir():
            found = _find_file(path, "queries")
            if found is None:
                raise InputError("no queries.jsonl[.gz] or queries.tsv in this folder", file=path)
            path = found
        seen: set[str] = set()
        if path.name.lower().endswith((".tsv", ".tsv.gz")):
            for line_no, row in _iter_tsv(path):
                if len(row) != 2:
                    raise InputError(f"expected 2 tab-separated columns (id, text), got {len(row)}", file=path,
                                     line=line_no)
                if row[0] in seen:
                    raise InputError(f"duplicate query id '{row[0]}'", file=path, line=line_no, field="id")
                seen.add(row[0])
                queries.append(Query(row[0], row[1]))
        else:
            for line_no, record in _iter_jsonl(path):
                qid = _record_id(record, path, line_no)
                if qid in seen:
                    raise InputError(f"duplicate query id '{qid}'", file=path, line=line_no, field="_id")
                seen.add(qid)
                queries.append(Query(qid, _record_text(record, path, line_no)))
    if ids is not None:
        queries = [q for q in queries if q.id in ids]
    return queries


def read_qrels(source: str | Path, split: str = "test") -> Qrels:
    """Relevance judgements {query id: {doc id: grade}} from a BEIR qrels TSV (header, CRLF allowed), a TREC qrels
    file (qid 0 docid grade), a BEIR folder plus split, or an ir_datasets id. Grades are kept as given."""
    qrels: Qrels = {}
    if not is_local(source):
        dataset = _ir_dataset(str(source))
        for q in _ir_datasets_call(str(source), "qrels", dataset.qrels_iter):
            qrels.setdefault(str(q.query_id), {})[str(q.doc_id)] = int(q.relevance)
        return qrels
    path = Path(source)
    if path.is_dir():
        candidate = path / "qrels" / f"{split}.tsv"
        if not candidate.is_file():
            available = sorted(p.stem for p in (path / "qrels").glob("*.tsv")) if (path / "qrels").is_dir() else []
            raise InputError(f"no qrels for split '{split}' (available: {', '.join(available) or 'none'})",
                             file=candidate)
        path = candidate
    try:
        with _open_text(path) as handle:
            for line_no, raw in enumerate(handle, start=1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                parts = line.split("\t") if "\t" in line else line.split()
                if line_no == 1 and parts[0].lower() in ("query-id", "query_id", "qid"):
                    continue
                if len(parts) == 3:
                    qid, did, grade = parts
                elif len(parts) == 4:
                    qid, _, did, grade = parts
                else:
                    raise InputError(f"expected 3 (BEIR) or 4 (TREC) columns, got {len(parts)}", file=path,
                                     line=line_no)
                try:
                    value = int(grade)
                except ValueError:
                    raise InputError(f"relevance grade '{grade}' is not an integer", file=path, line=line_no,
                                     field="score") from None
                qrels.setdefault(qid, {})[did] = value
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc}", file=path) from None
    return qrels
