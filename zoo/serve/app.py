"""The web side of `zoo serve`: a small ASGI app (starlette, run by uvicorn) serving one static page and a JSON API.

Safe by default: it binds to 127.0.0.1; a request body is kept only once the request has a place in the queue, and
only up to MAX_BODY_BYTES (the rest is read and dropped); images are decoded with the CLI's checks (`studio.decode_upload`); each model runs one
translation at a time and at most MAX_PENDING translations are admitted at once (running or waiting), the rest get
429 with Retry-After; every error reaches the page as one line of JSON, never a traceback (bugs are logged here).

POST /api/translate answers with newline-delimited JSON: progress events, then {"stage": "done", "result": ...} or
{"stage": "error", "error": ...}. Results stay in memory (the latest, up to MAX_RESULT_BYTES) for their downloads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
import socket
import time
import uuid
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ZooError, environment_problem
from .studio import MAX_UPLOAD_BYTES, Studio, Translation, Upload

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 2 * (MAX_UPLOAD_BYTES * 4 // 3 + 4096) + 65536  # two base64 images and the fields
MAX_PENDING = 6  # translations admitted at once, running or waiting: each holds at most one body in memory
MAX_RESULT_BYTES = 256 << 20  # PNGs of finished translations kept for download (an emoji result takes about 50 KB)
RETRY_AFTER_SECONDS = 5
LOOPBACK = ("127.0.0.1", "localhost", "::1")
INTERNAL_ERROR = "internal error in zoo (the server's log has the details); please report it"
log = logging.getLogger("zoo.serve")


class Refused(Exception):
    """A request answered with an HTTP error and a one-line message."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def problem_text(error: BaseException) -> str | None:
    """The one line a user sees for an error of theirs or of the machine; None for a bug in zoo."""
    if isinstance(error, ZooError):
        return str(error)
    return environment_problem(error)


class Queue:
    """At most `limit` translations admitted at once; each runs when every model it uses is free (one translation at
    a time per model; locks taken in name order, so two translations never wait for each other)."""

    def __init__(self, limit: int = MAX_PENDING):
        self.limit, self.admitted = limit, 0
        self.locks: dict[str, asyncio.Lock] = {}

    def admit(self) -> None:
        if self.admitted >= self.limit:
            raise Refused(429, f"busy: {self.admitted} translations are running or waiting; try again in a few seconds",
                          {"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1

    @contextlib.asynccontextmanager
    async def holding(self, models: list[str]):
        async with contextlib.AsyncExitStack() as stack:
            for name in sorted(set(models)):
                await stack.enter_async_context(self.locks.setdefault(name, asyncio.Lock()))
            yield


class Results:
    """Finished translations by id, the oldest dropped while their PNGs take more than `limit` bytes (the newest is
    always kept)."""

    def __init__(self, limit: int = MAX_RESULT_BYTES):
        self.limit, self.items = limit, OrderedDict()

    def add(self, result: Translation) -> str:
        key = uuid.uuid4().hex
        self.items[key] = result
        while len(self.items) > 1 and sum(size_of(item) for item in self.items.values()) > self.limit:
            self.items.popitem(last=False)
        return key

    def get(self, key: str) -> Translation:
        if key not in self.items:
            raise Refused(404, "this result is no longer kept; translate again")
        return self.items[key]


def size_of(result: Translation) -> int:
    return sum(len(picture.png) for picture in result.pictures())


def describe(key: str, result: Translation) -> dict:
    """A result as the page shows it: every picture's label and URL, grouped as the gallery lays them out."""

    def entry(picture):
        return {"label": picture.label, "file": picture.file, "url": f"/api/results/{key}/{picture.file}"}

    return {
        "id": key, "method": result.method, "seconds": round(result.seconds, 2), "zip": f"/api/results/{key}.zip",
        "input": entry(result.input), "reconstruction": entry(result.reconstruction) if result.reconstruction else None,
        "targets": [{"name": name, "outputs": [entry(p) for p in pictures],
                     "truth": entry(result.truths[name]) if name in result.truths else None}
                    for name, pictures in result.outputs.items()],
    }  # fmt: skip


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 when it passes `limit` bytes; past the limit it is read and dropped, not kept, so
    that the client, still sending, gets the answer rather than a reset connection."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise Refused(413, f"request of {size / 2**20:.1f} MiB; uploads are limited to {MAX_UPLOAD_BYTES >> 20} MiB an image")
    return b"".join(chunks)


async def drain(request: Request) -> None:
    """Read and drop the body of a refused request (see `read_body`)."""
    async for _ in request.stream():
        pass


def parse_upload(value, what: str) -> Upload | None:
    """{"name": ..., "data": base64} -> Upload; None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise Refused(400, f"{what}: expected {{'name': ..., 'data': base64}}")
    try:
        data = base64.b64decode(value["data"].split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, f"{what}: its data is not base64") from None
    name = "".join(character for character in str(value.get("name") or what) if character.isprintable())[:200]
    return Upload(name or what, data)  # the name shows in messages: one line, printable


def parse_order_fields(body: bytes) -> dict:
    """The request's JSON as `Studio.check_order`'s arguments; a 400 naming the field for anything malformed."""
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, "the request is not JSON; send it from the page") from None
    if not isinstance(fields, dict):
        raise Refused(400, "the request is not a JSON object")
    targets, swap, styles = fields.get("targets"), fields.get("swap"), fields.get("styles", 0)
    if not isinstance(fields.get("source"), str) or not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise Refused(400, "give 'source' (a model name) and 'targets' (a list of model names)")
    if (swap is not None and type(swap) is not int) or type(styles) is not int:
        raise Refused(400, "'swap' is a whole number or null (the recipe's), 'styles' a whole number")
    example = fields.get("example")
    if example is not None and not isinstance(example, str):
        raise Refused(400, "'example' is a file name the page lists")
    return dict(source=fields["source"], targets=targets, swap=swap, styles=styles, example=example,
                upload=parse_upload(fields.get("image"), "image"), reference=parse_upload(fields.get("reference"), "reference"))  # fmt: skip


def line(event: dict) -> bytes:
    return (json.dumps(event) + "\n").encode()


def create_app(studio: Studio | None = None, queue_limit: int = MAX_PENDING) -> Starlette:
    """The ASGI app over `studio` (default: the installed zoo, the API's default inversion)."""
    studio = studio or Studio()
    queue, results = Queue(queue_limit), Results()
    running: set[asyncio.Task] = set()  # translations outlive a closed page; their tasks are kept referenced here

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def catalog(request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(studio.catalog))

    async def example(request: Request) -> Response:
        path = await asyncio.to_thread(studio.example, request.path_params["source"], request.path_params["name"])
        return FileResponse(path, media_type="image/png")

    distance_cache: dict[str, dict] = {}
    distance_lock = asyncio.Lock()  # one matrix at a time; each is kept

    async def distances(request: Request) -> Response:
        async with distance_lock:
            source = request.path_params["source"]
            if source not in distance_cache:
                distance_cache[source] = await asyncio.to_thread(studio.distances, source)
        return JSONResponse(distance_cache[source])

    async def translate(request: Request) -> Response:
        try:
            queue.admit()
        except Refused:
            await drain(request)
            raise
        try:
            fields = parse_order_fields(await read_body(request))
            order = await asyncio.to_thread(studio.check_order, **fields)
        except BaseException:
            queue.leave()
            raise
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def progress(event: dict) -> None:  # called from the worker thread
            loop.call_soon_threadsafe(events.put_nowait, event)

        async def work() -> None:
            try:
                async with queue.holding(order.models):
                    started = time.perf_counter()
                    result = await asyncio.to_thread(studio.translate, order, progress)
                    result.seconds = time.perf_counter() - started
                events.put_nowait({"stage": "done", "result": describe(results.add(result), result)})
            except Exception as error:  # the page gets one line; a bug's traceback goes to the server's log only
                text = problem_text(error)
                if text is None:
                    log.exception("translation failed")
                    text = INTERNAL_ERROR
                events.put_nowait({"stage": "error", "error": text})
            finally:
                queue.leave()

        task = asyncio.create_task(work())
        running.add(task)
        task.add_done_callback(running.discard)

        async def stream():
            yield line({"stage": "queued"})
            while True:
                event = await events.get()
                yield line(event)
                if event["stage"] in ("done", "error"):
                    return

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    async def result_file(request: Request) -> Response:
        result = results.get(request.path_params["key"])
        name = request.path_params["file"]
        picture = next((p for p in result.pictures() if p.file == name), None)
        if picture is None:
            raise Refused(404, f"{name}: no such image in this result")
        return Response(picture.png, media_type="image/png", headers={"Content-Disposition": f'inline; filename="{name}"'})

    async def result_zip(request: Request) -> Response:
        key = request.path_params["key"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for picture in results.get(key).pictures():
                archive.writestr(picture.file, picture.png)
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="zoo-{key[:8]}.zip"'})  # fmt: skip

    async def refused(request: Request, error: Refused) -> Response:
        return JSONResponse({"error": str(error)}, status_code=error.status, headers=error.headers)

    async def user_error(request: Request, error: ZooError) -> Response:
        return JSONResponse({"error": str(error)}, status_code=400)

    async def failure(request: Request, error: Exception) -> Response:
        text = problem_text(error)
        if text is None:  # a bug: starlette logs its traceback here after this answer
            return JSONResponse({"error": INTERNAL_ERROR}, 500)
        return JSONResponse({"error": text}, status_code=503)

    routes = [
        Route("/", index),
        Route("/api/catalog", catalog),
        Route("/api/examples/{source}/{name}", example),
        Route("/api/distances/{source}", distances),
        Route("/api/translate", translate, methods=["POST"]),
        Route("/api/results/{key}.zip", result_zip),
        Route("/api/results/{key}/{file}", result_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {Refused: refused, ZooError: user_error, Exception: failure}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        preloading = asyncio.create_task(asyncio.to_thread(studio.preload))  # the page is served meanwhile
        yield
        await preloading

    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


def serve(host: str = "127.0.0.1", port: int = 7860, studio: Studio | None = None) -> None:
    """Run the app until Ctrl-C (what `zoo serve` does); an address it cannot listen on is a one-line ZooError."""
    import uvicorn

    try:
        socket.create_server((host, port)).close()
    except OSError as error:
        raise ZooError(f"{host}:{port}: cannot listen there ({error.strerror or error}); choose another --port or --host") from None
    if host not in LOOPBACK:
        warnings.warn(f"listening on {host}: anyone who can reach port {port} there can use this zoo (there is no login)")
    uvicorn.run(create_app(studio), host=host, port=port, log_level="info", server_header=False,
                limit_concurrency=64)  # fmt: skip
