"""A tiny real checkpoint and a real `vloom serve` on 127.0.0.1 for the serving and HTTP-backend
tests (a random-init model: its greedy text is gibberish, but exactly reproducible)."""

from __future__ import annotations

import base64
import io
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tinyexp import tiny_config

from vloom.model.io import build_model, save_model
from vloom.pack.tokenizer import train_tokenizer
from vloom.serve.engine import Engine
from vloom.serve.protocol import Limits
from vloom.serve.server import start_server, stop_server

# small caps, so the hostile-input tests hit them with small bodies
LIMITS = Limits(max_body_bytes=64 << 10, max_image_bytes=16 << 10, max_images=3, max_n=4)

CORPUS = [
    "Question: What colour is the circle? Answer: The red object is a circle.",
    "The blue square is at the top left. A green triangle sits beside it.",
    "Scene 1. There are two objects: a large red circle and a small blue square.",
] * 20


def make_checkpoint(root: Path, max_seq_len: int = 96) -> Path:
    """root/ckpt: a randomly initialised tiny VLM whose config.json names root/tokenizer.json."""
    tok_path = root / "tokenizer.json"
    tok = train_tokenizer(CORPUS, 300, tok_path)
    cfg = tiny_config()
    torch.manual_seed(0)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": tok.get_vocab_size(),
        "max_seq_len": max_seq_len,
        "image_size": cfg.synth.image_size,
    }
    ckpt = root / "ckpt"
    save_model(build_model(meta), ckpt, extra={"tokenizer": str(tok_path)})
    return ckpt


def png(colour=(200, 30, 30), size: int = 32) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", (size, size), (250, 250, 250))
    im.paste(colour, (4, 4, size // 2, size // 2))
    im.save(buf, format="PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class Served:
    """An in-process server over a checkpoint; `.url` is its base (http://127.0.0.1:P/v1)."""

    def __init__(self, ckpt: Path, limits: Limits | None = None, **engine_kw: Any) -> None:
        torch.set_num_threads(1)  # a loaded shared CPU: one thread runs steadier
        self.engine = Engine(ckpt, device="cpu", **engine_kw)
        self.srv, self.thread = start_server(self.engine, port=0, limits=limits, quiet=True)
        self.url = self.srv.url + "/v1"

    def close(self) -> None:
        stop_server(self.srv, self.thread)


def post(url: str, body: Any, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """POST JSON (or raw bytes) -> (status, JSON answer), error statuses included."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
