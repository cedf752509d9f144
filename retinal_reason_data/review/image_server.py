"""The images of a Label Studio task file, for the annotator's browser: a small loopback server of exactly the
files the tasks name (`rrd annotations serve-images`), and data URLs for tasks that carry their images.

`export-labelstudio` writes `<tasks>.images.json` beside the task file: each served name (the image's sha256 and
its suffix) with the file's path. The server reads only that manifest: it answers GET for those names and
nothing else, checks each file's sha256 before sending it (a file changed since the export is refused, not
shown in its place), converts formats browsers do not show (TIFF, ...) to PNG, and lets only the Label Studio
origins it was given read the bytes (CORS): Label Studio downloads images with XMLHttpRequest.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from retinal_reason_data.review.app import image_bytes as browser_image

DEFAULT_PORT = 8765
DEFAULT_ORIGINS = ("http://localhost:8080", "http://127.0.0.1:8080")  # `label-studio start` on this machine
LOOPBACK = ("127.0.0.1", "::1", "localhost")
SOCKET_TIMEOUT = 10.0  # seconds a connection may stay silent


class ImageServeError(ValueError):
    """The manifest or an image cannot be served; the message names the file."""


def manifest_path(tasks_path: Path) -> Path:
    """`<tasks>.images.json`, beside the task file."""
    return tasks_path.with_suffix(".images.json")


def served_name(sha256: str, path: str | Path) -> str:
    """The name an image is served under: its sha256 and the file's suffix (`<sha>.jpg`)."""
    suffix = Path(path).suffix.lower()
    return sha256 + (suffix if suffix[1:].isalnum() else "")


def data_url(path: Path, max_bytes: int) -> tuple[str, bool]:
    """The image as a `data:` URL of at most `max_bytes` decoded bytes, and whether it had to be reduced (a smaller
    JPEG, halving the size until it fits)."""
    data, kind = browser_image(path.read_bytes())
    reduced = False
    if len(data) > max_bytes:
        reduced = True
        with Image.open(io.BytesIO(data)) as image:
            picture = image.convert("RGB")
        for _ in range(12):  # each round halves both sides: 12 rounds take 4096 px to 1 px
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=90)
            data, kind = buffer.getvalue(), "image/jpeg"
            if len(data) <= max_bytes or min(picture.size) <= 16:
                break
            picture = picture.resize((max(1, picture.width // 2), max(1, picture.height // 2)), Image.LANCZOS)
        if len(data) > max_bytes:
            raise ImageServeError(f"{path}: cannot be made smaller than {max_bytes} bytes; raise --max-image-bytes")
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}", reduced


# --- the manifest -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServedImage:
    name: str
    path: Path
    sha256: str


def read_manifest(tasks_path: Path) -> tuple[str, dict[str, ServedImage]]:
    """(base URL, images by served name) from `<tasks>.images.json`."""
    path = manifest_path(tasks_path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        images = {
            name: ServedImage(name, Path(entry["path"]), str(entry["sha256"]))
            for name, entry in manifest["images"].items()
        }
        return str(manifest["base_url"]), images
    except FileNotFoundError:
        raise ImageServeError(
            f"{path}: not found; export the tasks with `rrd annotations export-labelstudio --images serve` first"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ImageServeError(f"{path}: not a manifest written by export-labelstudio ({exc!r})") from None


def manifest_json(base_url: str, images: Iterable[ServedImage]) -> str:
    entries = {image.name: {"path": str(image.path), "sha256": image.sha256} for image in images}
    return json.dumps({"base_url": base_url, "images": dict(sorted(entries.items()))}, indent=1) + "\n"


def check_base_url(base_url: str) -> tuple[str, int]:
    """(host, port) of an image base URL, which must be plain http on a loopback address."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK or parts.path not in ("", "/"):
        raise ImageServeError(
            f"image URL {base_url!r}: expected http://127.0.0.1:PORT (the images are served on this machine only)"
        )
    return parts.hostname, parts.port or 80


# --- the server ---------------------------------------------------------------------------------------------
class ImageServer:
    """Serves the images of one manifest on a loopback address until `close()`."""

    def __init__(
        self,
        images: dict[str, ServedImage],
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        origins: Iterable[str] = DEFAULT_ORIGINS,
    ) -> None:
        if host not in LOOPBACK:
            raise ImageServeError(f"host {host!r}: images are served on a loopback address only (127.0.0.1, ::1)")
        self.images = images
        self.origins = {origin.rstrip("/") for origin in origins}
        for origin in self.origins:
            if urlsplit(origin).scheme not in ("http", "https") or not urlsplit(origin).netloc:
                raise ImageServeError(
                    f"origin {origin!r}: expected the Label Studio address, e.g. http://localhost:8080"
                )
        server_class = type("_Server", (ThreadingHTTPServer,), {"request_queue_size": 128, "daemon_threads": True})
        if ":" in host:
            server_class.address_family = socket.AF_INET6
        self.httpd = server_class((host, port), _handler(self))
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def allowed_hosts(self) -> set[str]:
        return {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost", "[::1]")}

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rrd-images", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever(), which only a started server runs
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()

    def image_bytes(self, name: str) -> tuple[bytes, str]:
        """The bytes of a served image, checked against its sha256."""
        image = self.images[name]
        data = image.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise ImageServeError(f"{image.path}: changed since the tasks were exported; export them again")
        return browser_image(data)


def _handler(server: ImageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "rrd-images"
        sys_version = ""
        timeout = SOCKET_TIMEOUT

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            pass

        def version_string(self) -> str:
            return self.server_version

        def _origin_headers(self) -> dict[str, str]:
            origin = self.headers.get("Origin")
            if origin and origin.rstrip("/") in server.origins:
                return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
            return {"Vary": "Origin"}

        def _send(self, status: HTTPStatus, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            headers = {
                "Content-Type": kind,
                "Content-Length": str(len(body)),
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, max-age=3600",
                # other sites' pages may not embed these images with a plain <img>; Label Studio reads them by CORS
                "Cross-Origin-Resource-Policy": "same-origin",
                **self._origin_headers(),
                **(extra or {}),
            }
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _refuse(self, status: HTTPStatus, message: str) -> None:
            self.close_connection = True
            self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8", {"Connection": "close"})

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.headers.get("Host") not in server.allowed_hosts():
                self._refuse(HTTPStatus.BAD_REQUEST, "unknown Host")  # a DNS-rebinding page gets nothing
                return
            name = urlsplit(self.path).path.lstrip("/")
            if name not in server.images:
                self._refuse(HTTPStatus.NOT_FOUND, "not an image of these tasks")
                return
            try:
                body, kind = server.image_bytes(name)
            except (OSError, ImageServeError) as exc:
                self._refuse(HTTPStatus.GONE, str(exc))
                return
            self._send(HTTPStatus.OK, body, kind)

        do_HEAD = do_GET  # noqa: N815

        def do_OPTIONS(self) -> None:  # noqa: N802 (a CORS preflight)
            self._send(
                HTTPStatus.NO_CONTENT,
                b"",
                "text/plain",
                {"Access-Control-Allow-Methods": "GET, HEAD", "Access-Control-Max-Age": "600"},
            )

        def _not_allowed(self) -> None:
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "only GET")

        do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815

    return Handler


def serve_images(
    tasks_path: Path,
    echo: Callable[[str], None],
    port: int | None = None,
    origins: Iterable[str] = DEFAULT_ORIGINS,
    stop: threading.Event | None = None,
) -> None:
    """Serve the images of a task file until interrupted (or until `stop` is set)."""
    base_url, images = read_manifest(tasks_path)
    host, exported_port = check_base_url(base_url)
    missing = [str(image.path) for image in images.values() if not image.path.is_file()]
    if missing:
        raise ImageServeError(f"{len(missing)} images of {tasks_path} are missing, e.g. {missing[0]}")
    server = ImageServer(images, host, exported_port if port is None else port, origins)
    server.start()
    echo(f"serving {len(images)} images of {tasks_path} at {server.url}/ for {', '.join(sorted(server.origins))}")
    if port is not None and port != exported_port:
        echo(f"note: the tasks name {base_url}; Label Studio will not find the images on port {server.port}")
    echo("press Ctrl+C to stop")
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
