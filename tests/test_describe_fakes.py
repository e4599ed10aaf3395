"""Test helpers for the describe stage: a real OpenAI-compatible HTTP server on 127.0.0.1 and
small manifests. (No tests here; imported by the other ``test_describe_*`` modules.)"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from priorsight.manifest import CorpusWriter
from priorsight.records import Drawing

ADJECTIVES = ["smooth", "slender", "rounded", "compact", "tapered", "flat", "curved", "wide", "narrow", "angular"]
PARTS = ["handle", "rim", "base", "edge", "body", "top", "stem", "collar", "shell", "frame"]


def fake_description(obj: str, seed: int) -> str:
    """What the fake model writes: a sentence naming the object, and an invented material."""
    a = ADJECTIVES[seed % len(ADJECTIVES)]
    p = PARTS[(seed // len(ADJECTIVES)) % len(PARTS)]
    return f" A {obj} with a {a} {p}. It is made of polished steel."


@dataclass
class FakeLLM:
    """An OpenAI-compatible server (``/v1/completions``, ``/v1/chat/completions``) that can be
    told to fail (``fail_next``: status codes for the next requests; ``fail_if``: a status for
    payloads it matches) or to be slow (``sleep_s``)."""

    sleep_s: float = 0.0
    fail_next: list[int] = field(default_factory=list)
    fail_if: Callable[[dict], int | None] | None = None
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    max_active: int = 0
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                status, payload = fake._answer(self.path, body, dict(self.headers))
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        with self._lock:
            self.requests.append({"path": path, **body})
            self.headers.append(headers)
            self._active += 1
            self.max_active = max(self.max_active, self._active)
            status = self.fail_next.pop(0) if self.fail_next else None
        try:
            if self.sleep_s:
                time.sleep(self.sleep_s)
            if status is None and self.fail_if is not None:
                status = self.fail_if(body)
            if status is not None:
                return status, {"error": {"message": f"told to fail with {status}"}}
            chat = path.endswith("/chat/completions")
            if not (chat or path.endswith("/completions")):
                return 404, {"error": {"message": "no such route"}}
            prompt = body["messages"][-1]["content"] if chat else body["prompt"]
            objects = re.findall(r"^Object: (.+)$", prompt, re.M)
            obj = objects[-1] if objects else "thing"
            seed = int(body.get("seed") or 0)
            texts = [fake_description(obj, seed + j) for j in range(int(body.get("n", 1)))]
            choices = [({"index": j, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                        if chat else {"index": j, "text": t, "finish_reason": "stop"}) for j, t in enumerate(texts)]
            usage = {"completion_tokens": sum(len(t.split()) for t in texts)}
            return 200, {"id": "x", "object": "chat.completion" if chat else "text_completion",
                         "choices": choices, "usage": usage}
        finally:
            with self._lock:
                self._active -= 1


def drawing(patent: str, fig: int, title: str, view: str, view_text: str, locarno: str | None = "07-03",
            figure_description: str = "", caption: str = "", us_class: str | None = None) -> Drawing:
    return Drawing(
        drawing_id=f"{patent}-D{fig:05d}", patent_id=patent, image_uri=f"/nonexistent/{patent}/{fig}.png",
        source="test", figure_number=fig, figure_label=f"FIG. {fig}", view=view, view_text=view_text,
        object_name="", locarno_class=locarno, us_class=us_class, title=title,
        figure_description=figure_description or f"FIG. {fig} is a {view_text} view of a {title.lower()}.",
        caption=caption,
    )


TITLES = ["Sport spoon", "Shoe", "Wheel", "Dispenser bottle", "Stage light", "Golf club head",
          "Belt buckle", "Dental abutment"]
VIEWS = [("perspective", "front perspective"), ("top", "top plan"), ("left", "side"), ("rear", "rear")]


def write_manifest(out_dir, patents: int = 3, views: int = 2) -> str:
    """A small manifest of ``patents`` patents with ``views`` drawings each; returns its URI."""
    with CorpusWriter(str(out_dir)) as w:
        for p in range(patents):
            for f in range(views):
                view, vt = VIEWS[f % len(VIEWS)]
                w.write(drawing(f"USD{p:07d}", f + 1, TITLES[p % len(TITLES)], view, vt))
    return str(out_dir / "manifest.parquet")
