"""The ASGI application: a JSON search API (documented at /openapi.json) and the web page at ``/``.

Starlette on uvicorn, with pydantic models for the request and response shapes (``tremor.serve.models``): the models
check each request (a malformed one is a 422 naming the field) and are the schemas of the OpenAPI document built
here. Starlette rather than FastAPI on purpose: the same models and document, without a dependency-injection and
middleware layer per request, whose cost is most of the HTTP overhead of a sub-millisecond search. Searches run on a
pool of worker threads (``SearchPool``), never on the event loop: the Numba kernels release the GIL, so concurrent
requests use every core while the loop keeps answering.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

import orjson
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tremor.errors import QueryError, TremorError
from tremor.serve.limits import API_KEY_HEADER, ApiError, GuardMiddleware, SearchPool, ServeLimits
from tremor.serve.models import (
    GET_SEARCH_FIELDS,
    DocumentResponse,
    DocumentsRequest,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    HealthResponse,
    IndexesResponse,
    QueryItem,
    SearchRequest,
    SearchResponse,
    WriteResponse,
)
from tremor.serve.service import QuerySpec, SearchSpec, ServedIndex, check_limits, check_text, open_indexes
from tremor.serve.writes import IndexWrites

STATIC = Path(str(resources.files("tremor.serve") / "static"))
ERROR_STATUSES = {400: "Bad input", 401: "Missing or wrong API key", 404: "No such index, document or endpoint",
                  408: "Took longer than the server's time limit", 413: "Request body too large",
                  422: "Invalid request (the message names the field)", 429: "Server busy; retry"}
WRITE_STATUSES = {403: "Writes are off on this server", 409: "Another writer holds the index"}


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"error": {"status": status, "message": message}}, status, headers)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "parse error")
            return f"the request body is not valid JSON ({detail})"
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Answer the errors a request can cause as JSON with a 4xx status."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.headers)
        except ValidationError as exc:
            return _error(422, _validation_message(exc))
        except QueryError as exc:
            return _error(422, str(exc))
        except TremorError as exc:
            return _error(400, str(exc))

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def openapi_document() -> dict:
    """The OpenAPI 3.1 description of the API, its schemas generated from the pydantic models."""
    requests = [SearchRequest, EncodeRequest, DocumentsRequest]
    responses = [SearchResponse, EncodeResponse, DocumentResponse, HealthResponse, IndexesResponse, ErrorResponse,
                 WriteResponse]
    _, top = models_json_schema([(m, "validation") for m in requests] + [(m, "serialization") for m in responses],
                                ref_template="#/components/schemas/{model}")

    def ref(model: type[BaseModel]) -> dict:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def operation(summary: str, tag: str, response: type[BaseModel], body: type[BaseModel] | None = None,
                  parameters: list[dict] | None = None, write: bool = False) -> dict:
        statuses = {**ERROR_STATUSES, **WRITE_STATUSES} if write else ERROR_STATUSES
        out = {"summary": summary, "tags": [tag], "parameters": parameters or [],
               "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref(response)}}},
                             **{str(status): {"description": text,
                                              "content": {"application/json": {"schema": ref(ErrorResponse)}}}
                                for status, text in statuses.items()}}}
        if write:
            out["security"] = [{"apiKey": []}]
        if body is not None:
            out["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
        return out

    def query(name: str, schema: dict, description: str = "", required: bool = False) -> dict:
        return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}

    search_fields = SearchRequest.model_json_schema()["properties"]
    get_search = [query(name, {k: v for k, v in search_fields[name].items() if k != "description"},
                        search_fields[name].get("description", ""), name == "q") for name in GET_SEARCH_FIELDS]
    index_param = query("index", {"type": "string"}, "Index name; default: the first one served.")
    doc_param = {"name": "doc_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tremor", "version": "0.1.0",
                 "description": "Learned-sparse search over HTTP. Every error is JSON {error: {status, message}} with "
                                "a 4xx status. When the server has an API key, send it as X-API-Key."},
        "paths": {
            "/health": {"get": operation("Liveness: the indexes served and the work in progress", "service",
                                         HealthResponse)},
            "/indexes": {"get": operation("Each index's manifest summary, and the server's limits", "service",
                                          IndexesResponse)},
            "/search": {
                "post": operation("Search one query (text or pre-encoded vector) or a batch, with search parameters, "
                                  "hybrid/PRF options where the index has a dense side, and explanations", "search",
                                  SearchResponse, body=SearchRequest),
                "get": operation("Quick search from a URL: /search?q=seismic+waves&k=5", "search", SearchResponse,
                                 parameters=get_search)},
            "/documents/{doc_id}": {
                "get": operation("A document's title and text by its id", "documents", DocumentResponse,
                                 parameters=[doc_param, index_param]),
                "delete": operation("Delete a document of a live index and commit (needs the API key)", "documents",
                                    WriteResponse, parameters=[doc_param, index_param], write=True)},
            "/documents": {"post": operation("Add documents to a live index, replacing any with the same id, and "
                                             "commit (needs the API key)", "documents", WriteResponse,
                                             body=DocumentsRequest, write=True)},
            "/encode": {"post": operation("Term weights of a text (or texts) on the query or document side, largest "
                                          "first, expansions marked", "search", EncodeResponse, body=EncodeRequest)},
        },
        "components": {"schemas": top["$defs"],
                       "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}},
    }


def create_app(indexes: dict[str, str | Path] | dict[str, ServedIndex], limits: ServeLimits | None = None,
               api_key: str | None = None, device: str = "cpu", read_only: bool = False,
               refresh_interval_s: float = 0.5, hold_writer: bool = True) -> Starlette:
    """The application serving ``indexes`` (name → index directory, or already opened ServedIndex objects).

    Writes (POST /documents, DELETE /documents/{id}) need an API key and ``read_only`` off; every
    ``refresh_interval_s`` at most, a request first checks for a newer commit of a live index (another process's
    write). ``hold_writer`` off (several processes): each write opens and closes the index's writer."""
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
    openapi = orjson.dumps(openapi_document())
    writes: dict[str, IndexWrites] = {}
    swap_lock = threading.Lock()
    checked: dict[str, float] = {}

    def name_of(name: str | None) -> str:
        if name is None:
            return default_name
        if name not in served:
            raise ApiError(404, f"no index named '{name}'; this server has: {', '.join(served)}")
        return name

    def follow(name: str, force: bool = False) -> ServedIndex:
        """The index's current ServedIndex, reopened when its directory has a newer commit. A new object is
        swapped in (never the one in use mutated), so searches running on other threads keep their snapshot."""
        from tremor.index.segments import commit_generations

        with swap_lock:  # requests arriving during a reopen wait for it rather than answer from the old snapshot
            if not force and time.monotonic() - checked.get(name, -1e9) < refresh_interval_s:
                return served[name]
            current = served[name]
            generations = commit_generations(current.path)
            if generations and generations[-1] != current.searcher.manifest.get("generation"):
                fresh = ServedIndex(name, current.path, device)
                fresh.serialize_batches = current.serialize_batches
                served[name] = fresh
            checked[name] = time.monotonic()
            return served[name]

    def pick(name: str | None) -> ServedIndex:
        return served[name_of(name)]

    async def current(name: str | None) -> ServedIndex:
        name = name_of(name)
        if time.monotonic() - checked.get(name, -1e9) < refresh_interval_s:
            return served[name]
        return await pool.run(follow, name)

    def writer(name: str) -> IndexWrites:
        if read_only:
            raise ApiError(403, "this server was started with --read-only; writes are off")
        if api_key is None:
            raise ApiError(403, "writes need an API key: start the server with --api-key (or TREMOR_API_KEY)")
        with swap_lock:
            if name not in writes:
                writes[name] = IndexWrites(served[name].path, hold=hold_writer,
                                           wait_s=0.0 if hold_writer else limits.timeout_s / 2)
            return writes[name]

    async def run_search(body: SearchRequest, t0: float) -> Response:
        target = await current(body.index)
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

    @_endpoint
    async def search_post(request: Request) -> Response:
        t0 = time.perf_counter()
        return await run_search(SearchRequest.model_validate_json(await request.body()), t0)

    @_endpoint
    async def search_get(request: Request) -> Response:
        t0 = time.perf_counter()
        params = request.query_params
        if "q" not in params:
            raise QueryError("GET /search needs q, e.g. /search?q=seismic+waves&k=5")
        return await run_search(SearchRequest.model_validate(
            {name: params[name] for name in GET_SEARCH_FIELDS if name in params}), t0)

    @_endpoint
    async def health(request: Request) -> Response:
        return _json({"status": "ok", "indexes": list(served), "uptime_s": round(time.time() - started, 1),
                      "searches_in_progress": pool.pending})

    @_endpoint
    async def list_indexes(request: Request) -> Response:
        return _json({"default": default_name, "indexes": [s.summary() for s in served.values()],
                      "limits": {"max_k": limits.max_k, "max_query_chars": limits.max_query_chars,
                                 "max_batch": limits.max_batch, "timeout_s": limits.timeout_s}})

    @_endpoint
    async def get_document(request: Request) -> Response:
        target = await current(request.query_params.get("index"))
        return _json(await pool.run(target.document, request.path_params["doc_id"]))

    @_endpoint
    async def add_documents(request: Request) -> Response:
        from tremor.corpus import Document

        body = DocumentsRequest.model_validate_json(await request.body())
        name = name_of(body.index)
        if len(body.documents) > limits.max_batch:
            raise QueryError(f"{len(body.documents)} documents in one request; the server takes at most "
                             f"{limits.max_batch}")
        for i, doc in enumerate(body.documents):
            check_text(doc.id + doc.title + doc.text, f"documents[{i}]")
            if len(doc.title) + len(doc.text) > limits.max_document_chars:
                raise QueryError(f"documents[{i}] has {len(doc.title) + len(doc.text)} characters; the server "
                                 f"takes at most {limits.max_document_chars} per document")
        docs = [Document(id=d.id, text=d.text, title=d.title) for d in body.documents]
        out = await pool.run(writer(name).add, docs)
        await pool.run(follow, name, True)
        return _json({"index": name, "deleted": 0, **out})

    @_endpoint
    async def delete_document(request: Request) -> Response:
        name = name_of(request.query_params.get("index"))
        out = await pool.run(writer(name).delete, request.path_params["doc_id"])
        await pool.run(follow, name, True)
        return _json({"index": name, "added": 0, **out})

    @_endpoint
    async def encode(request: Request) -> Response:
        body = EncodeRequest.model_validate_json(await request.body())
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
        return _json({"index": target.name, "side": body.side,
                      "terms": encoded if body.texts is not None else encoded[0]})

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {404: f"no such endpoint: {request.url.path} (see /openapi.json)",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    async def bug(request: Request, exc: Exception) -> Response:
        return _error(500, f"internal error ({type(exc).__name__}); this is a bug in tremor, please report it")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        pool.shutdown()
        for index_writes in writes.values():
            index_writes.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/indexes", list_indexes, methods=["GET"]),
        Route("/search", search_post, methods=["POST"]),
        Route("/search", search_get, methods=["GET"]),
        Route("/documents", add_documents, methods=["POST"]),
        Route("/documents/{doc_id:path}", get_document, methods=["GET"]),
        Route("/documents/{doc_id:path}", delete_document, methods=["DELETE"]),
        Route("/encode", encode, methods=["POST"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/", page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error, Exception: bug},
                    middleware=[Middleware(GuardMiddleware, max_body_bytes=limits.max_body_bytes, api_key=api_key)])
    app.state.indexes = served
    app.state.limits = limits
    app.state.pool = pool
    return app


CONFIG_ENV = "TREMOR_SERVE_CONFIG"


def app_from_environment() -> Starlette:
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
                      device=config.get("device", "cpu"), read_only=bool(config.get("read_only")), hold_writer=False)
