"""The request and response shapes of the API, as pydantic models: they check requests (a malformed one becomes a
422 naming the field) and they are the schemas of the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Finite = Annotated[float, Field(allow_inf_nan=False)]
Weight = Annotated[float, Field(allow_inf_nan=False, ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryItem(_Strict):
    """One query of a batch: text or a pre-encoded vector."""

    q: str | None = Field(None, description="Query text.")
    vector: dict[str, Weight] | None = Field(None, description="Pre-encoded query: {token: weight}.")


class SearchRequest(_Strict):
    """A search: one query (``q`` or ``vector``) or a batch (``queries``), and how to search."""

    index: str | None = Field(None, description="Index name (GET /indexes); default: the first one served.")
    q: str | None = Field(None, description="Query text.", examples=["seismic waves"])
    vector: dict[str, Weight] | None = Field(None, description="Pre-encoded query, {token: weight} (tokens as "
                                                               "POST /encode returns them).")
    queries: list[str | QueryItem] | None = Field(None, description="A batch: texts or {q | vector} objects.")
    k: int = Field(10, ge=1, description="Hits per query (at most the server's max k).")
    query_cut: int | None = Field(None, ge=1, description="Seismic: query terms whose lists are visited.")
    heap_factor: Finite | None = Field(None, ge=0, description="Seismic: block skipping threshold factor.")
    n_knn: int | None = Field(None, ge=0, description="Seismic: κ-NN neighbours of each result to score.")
    retriever: Literal["sparse", "dense", "hybrid"] = Field("sparse", description="Dense and hybrid need an index "
                                                                                  "with a dense side.")
    fusion: Literal["minmax", "zscore", "rrf", "raw"] = "minmax"
    alpha: Finite = Field(0.5, ge=0, le=1, description="Hybrid weight of the sparse side.")
    prf: Literal["none", "sparse", "dense", "both"] = Field("none", description="Pseudo-relevance feedback side(s).")
    placement: Literal["before", "after", "both"] = "both"
    depth: int | None = Field(None, ge=1, description="Candidates per list in a pipeline (default 1000, or the "
                                                       "server's max k if smaller).")
    fb_docs: int = Field(10, ge=0, le=1000)
    fb_terms: int | None = Field(50, ge=1)
    rocchio_alpha: Finite = 1.0
    rocchio_beta: Finite = 0.25
    dense_fb_docs: int = Field(1, ge=0, le=1000)
    vector_prf: Literal["average", "rocchio"] = "rocchio"
    explain: bool = Field(False, description="Per hit, the matched terms and their contributions; per query, its "
                                             "term weights with expansions marked.")
    with_text: bool = Field(True, description="Titles and snippets in the hits.")


# the fields GET /search takes from its query string
GET_SEARCH_FIELDS = ("q", "k", "index", "explain", "query_cut", "heap_factor", "retriever")


class EncodeRequest(_Strict):
    """Text to term weights with an index's encoder."""

    index: str | None = None
    text: str | None = None
    texts: list[str] | None = None
    side: Literal["query", "document"] = "query"


class TermWeight(BaseModel):
    token: str
    weight: float
    expansion: bool | None = Field(None, description="Not among the text's own terms (null: no text).")


class Contribution(BaseModel):
    token: str
    query_weight: float
    doc_weight: float
    product: float
    expansion: bool | None


class Explanation(BaseModel):
    sparse_score: float = Field(description="Sum of the products: the sparse score (before any fusion).")
    n_matched: int = Field(description="Terms the document shares with the query (the list shows at most 64).")
    terms: list[Contribution]


class HitModel(BaseModel):
    rank: int
    id: str
    score: float
    title: str | None = None
    snippet: str | None = None
    explain: Explanation | None = None


class QueryResult(BaseModel):
    query: str | None
    hits: list[HitModel]
    query_terms: list[TermWeight] | None = None


class SearchResponse(BaseModel):
    index: str
    k: int
    search_ms: float = Field(description="Time spent encoding, searching and explaining, in the worker.")
    took_ms: float = Field(description="Time in the server, from the parsed request to the response.")
    results: list[QueryResult]


class EncodeResponse(BaseModel):
    index: str
    side: str
    terms: list[TermWeight] | list[list[TermWeight]] = Field(description="One list per text ('texts'), or one list "
                                                                         "('text').")


class DocumentResponse(BaseModel):
    index: str
    id: str
    title: str
    text: str


class HealthResponse(BaseModel):
    status: str
    indexes: list[str]
    uptime_s: float
    searches_in_progress: int


class IndexSummary(BaseModel):
    name: str
    index_type: str
    documents: int
    postings: int | None = None
    params: dict
    search_defaults: dict
    encoder: dict
    vocab_size: int | None = None
    vocab_id: str | None = None
    dense: bool
    corpus: str | None = None
    created: str | None = None


class IndexesResponse(BaseModel):
    default: str
    indexes: list[IndexSummary]
    limits: dict


class ErrorDetail(BaseModel):
    status: int
    message: str = Field(description="What was wrong and what to change.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class NewDocument(BaseModel):
    id: str = Field(min_length=1, description="External id; a live document with this id is replaced.")
    title: str = ""
    text: str


class DocumentsRequest(BaseModel):
    """Documents to add to (or replace in) a live index; committed before the response."""

    index: str | None = Field(None, description="Index name; default: the first one served.")
    documents: list[NewDocument] = Field(min_length=1)


class WriteResponse(BaseModel):
    index: str
    added: int = 0
    deleted: int = 0
    generation: int = Field(description="Commit generation after this write.")
    documents: int = Field(description="Live documents after this write.")
