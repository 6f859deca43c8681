"""`zoo serve`: a local web app over the Python API to translate your own images (`docs/serve.md`).

`studio` does the work (models, examples, one translation, the distance matrix) without any web library; `app` is the
ASGI app and its queue (starlette + uvicorn, the `serve` extra); `static/` holds the page (plain HTML, CSS and
JavaScript, nothing fetched from elsewhere).
"""

from __future__ import annotations

from ..errors import ZooError


def serve(host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page on host:port until Ctrl-C; a one-line ZooError when the `serve` extra is not installed."""
    try:
        from .app import serve as run
    except ImportError as error:
        raise ZooError(f"zoo serve needs {(error.name or 'starlette').split('.')[0]}: pip install 'zoo-stylegan[serve]'") from None
    run(host, port)
