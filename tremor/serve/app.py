"""The ASGI application: a JSON search API (documented at /openapi.json) and the web page at ``/``.

FastAPI on uvicorn: the request and response shapes are pydantic models, so the OpenAPI document and the input
checks come from one declaration, and a malformed request becomes a 422 naming the field. Searches run on a pool of
worker threads (``SearchPool``), never on the event loop: the Numba kernels release the GIL, so concurrent requests
use every core while the loop keeps answering.
"""

from __future__ import annotations

import contextlib
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tremor.errors import QueryError, TremorError
from tremor.serve.limits import ApiError, GuardMiddleware, SearchPool, ServeLimits
from tremor.serve.service import QuerySpec, SearchSpec, ServedIndex, check_limits, check_text, open_indexes

STATIC = Path(str(resources.files("tremor.serve") / "static"))

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


class EncodeRequest(_Strict):
    """Text to term weights with an index's encoder."""

    index: str | None = None
    text: str | None = None
    texts: list[str] | None = None
    side: Literal["query", "document"] = "query"


class TermWeight(BaseModel):
    token: str
    weight: float
    expansion: bool | None = Field(None, description="Not among the text's own terms (None: no text).")


class Contribution(BaseModel):
    token: str
    query_weight: float
    doc_weight: float
    product: float
    expansion: bool | None


class Explanation(BaseModel):
    sparse_score: float = Field(description="Sum of the products: the sparse score (before any fusion).")
    n_matched: int
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
    took_ms: float = Field(description="Time in the server, from the request to the response.")
    results: list[QueryResult]


class ErrorModel(BaseModel):
    error: dict = Field(description="{status, message}")


ERRORS = {status: {"model": ErrorModel} for status in (400, 401, 404, 408, 413, 422, 429)}


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response serialized by orjson (results are plain dicts already, so no model validation on the way
    out)."""
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"error": {"status": status, "message": message}}, status, headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        if error.get("type") == "json_invalid":
            ctx = error.get("ctx") or {}
            return f"the request body is not valid JSON ({ctx.get('error', 'parse error')})"
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(indexes: dict[str, str | Path] | dict[str, ServedIndex], limits: ServeLimits | None = None,
               api_key: str | None = None, device: str = "cpu") -> FastAPI:
    """The application serving ``indexes`` (name → index directory, or already opened ServedIndex objects)."""
    limits = limits or ServeLimits()
    limits.check()
    if not indexes:
        raise TremorError("serve needs at least one index directory")
    opened = {n: v for n, v in indexes.items() if isinstance(v, ServedIndex)}
    opened.update(open_indexes({n: v for n, v in indexes.items() if not isinstance(v, ServedIndex)}, device))
    served: dict[str, ServedIndex] = {name: opened[name] for name in indexes}
    default_name = next(iter(served))
    pool = SearchPool(limits)
    batch_lock = threading.Lock()
    started = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.shutdown()

    app = FastAPI(title="tremor", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Learned-sparse search over HTTP. Errors are JSON {error: {status, message}}; send "
                              "the API key (when the server has one) as X-API-Key.")
    app.state.indexes = served
    app.state.limits = limits
    app.state.pool = pool

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError):
        return _error(422, str(exc))

    @app.exception_handler(TremorError)
    async def _tremor_error(request: Request, exc: TremorError):
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        return _error(500, f"internal error ({type(exc).__name__}); this is a bug in tremor, please report it")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"no such endpoint: {request.url.path} (see /openapi.json)",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message)

    def pick(name: str | None) -> ServedIndex:
        if name is None:
            return served[default_name]
        if name not in served:
            raise ApiError(404, f"no index named '{name}'; this server has: {', '.join(served)}")
        return served[name]

    async def run_search(body: SearchRequest) -> Response:
        t0 = time.perf_counter()
        target = pick(body.index)
        given = [x is not None for x in (body.q, body.vector, body.queries)]
        if sum(given) != 1:
            raise QueryError("send exactly one of 'q' (text), 'vector' ({token: weight}) or 'queries' (a batch)")
        if body.queries is not None:
            items = [QueryItem(q=x) if isinstance(x, str) else x for x in body.queries]
            for i, item in enumerate(items):
                if (item.q is None) == (item.vector is None):
                    raise QueryError(f"queries[{i}]: give exactly one of 'q' and 'vector'")
            queries = [QuerySpec(item.q, item.vector) for item in items]
        else:
            queries = [QuerySpec(body.q, body.vector)]
        params = {key: value for key, value in (("query_cut", body.query_cut), ("heap_factor", body.heap_factor),
                                                 ("n_knn", body.n_knn)) if value is not None}
        pipeline = None
        if body.retriever != "sparse" or body.prf != "none":
            from tremor.search.pipeline import PipelineConfig

            depth = body.depth if body.depth is not None else min(PipelineConfig.depth, limits.max_k)
            pipeline = PipelineConfig(
                retriever=body.retriever, fusion=body.fusion, alpha=body.alpha, prf=body.prf,
                placement=body.placement, depth=depth, fb_docs=body.fb_docs, fb_terms=body.fb_terms,
                rocchio_alpha=body.rocchio_alpha, rocchio_beta=body.rocchio_beta, dense_fb_docs=body.dense_fb_docs,
                vector_prf=body.vector_prf)
            pipeline.check()
        spec = SearchSpec(queries, body.k, params, pipeline, body.explain, body.with_text)
        check_limits(spec, limits)
        out = await pool.run(target.search, spec, batch_lock)
        out["took_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        return _json(out)

    @app.get("/health", tags=["service"], responses=ERRORS)
    async def health() -> dict:
        """Liveness: the indexes served and the work in progress."""
        return {"status": "ok", "indexes": list(served), "uptime_s": round(time.time() - started, 1),
                "searches_in_progress": pool.pending}

    @app.get("/indexes", tags=["service"], responses=ERRORS)
    async def list_indexes() -> dict:
        """A summary of each index's manifest: type, documents, parameters, encoder, dense side."""
        return {"default": default_name, "indexes": [s.summary() for s in served.values()],
                "limits": {"max_k": limits.max_k, "max_query_chars": limits.max_query_chars,
                           "max_batch": limits.max_batch, "timeout_s": limits.timeout_s}}

    @app.post("/search", tags=["search"], response_model=SearchResponse, responses=ERRORS)
    async def search_post(body: SearchRequest):
        """Search one query (text or pre-encoded vector) or a batch, with search parameters, hybrid/PRF options
        where the index has a dense side, and optional explanations."""
        return await run_search(body)

    @app.get("/search", tags=["search"], response_model=SearchResponse, responses=ERRORS)
    async def search_get(q: Annotated[str, Query(description="Query text.")],
                         k: Annotated[int, Query(ge=1)] = 10, index: str | None = None,
                         explain: bool = False, query_cut: Annotated[int | None, Query(ge=1)] = None,
                         heap_factor: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
                         retriever: Literal["sparse", "dense", "hybrid"] = "sparse"):
        """Quick search from a URL: ``/search?q=seismic+waves&k=5``."""
        return await run_search(SearchRequest(q=q, k=k, index=index, explain=explain, query_cut=query_cut,
                                              heap_factor=heap_factor, retriever=retriever))

    @app.get("/documents/{doc_id}", tags=["documents"], responses=ERRORS)
    async def get_document(doc_id: str, index: str | None = None) -> dict:
        """A document's title and text by its id."""
        return await pool.run(pick(index).document, doc_id)

    @app.post("/encode", tags=["search"], responses=ERRORS)
    async def encode(body: EncodeRequest) -> dict:
        """Term weights of a text (or texts) on the query or the document side, largest first, expansions marked."""
        target = pick(body.index)
        if (body.text is None) == (body.texts is None):
            raise QueryError("send exactly one of 'text' and 'texts'")
        texts = [body.text] if body.text is not None else body.texts
        if not texts:
            raise QueryError("'texts' is empty; give at least one text")
        if len(texts) > limits.max_batch:
            raise QueryError(f"{len(texts)} texts in one request; the server takes at most {limits.max_batch}")
        most = limits.max_query_chars if body.side == "query" else limits.max_document_chars
        for i, text in enumerate(texts):
            check_text(text, f"text {i}")
            if len(text) > most:
                raise QueryError(f"text {i} has {len(text)} characters; the {body.side} side takes at most {most}")
        encoded = await pool.run(target.encode, texts, body.side)
        return {"index": target.name, "side": body.side, "terms": encoded if body.texts is not None else encoded[0]}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(GuardMiddleware, max_body_bytes=limits.max_body_bytes, api_key=api_key)
    return app


CONFIG_ENV = "TREMOR_SERVE_CONFIG"


def app_from_environment() -> FastAPI:
    """The app a server process builds when ``tremor serve --processes N`` starts several: the indexes, limits and
    device come as JSON in ``TREMOR_SERVE_CONFIG``, the API key (if any) in ``TREMOR_API_KEY``. Every process maps the
    same index files, so the arrays are in memory once (the page cache), whatever N."""
    import json
    import os
    from dataclasses import fields

    from tremor.serve.limits import API_KEY_ENV

    config = json.loads(os.environ[CONFIG_ENV])
    names = {f.name for f in fields(ServeLimits)}
    limits = ServeLimits(**{key: value for key, value in config["limits"].items() if key in names})
    return create_app(config["indexes"], limits, api_key=os.environ.get(API_KEY_ENV) or None,
                      device=config.get("device", "cpu"))
