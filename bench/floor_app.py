"""The floor app: the cost of the stack itself (Flask + gunicorn gevent + requests).

One bare view forwards a string `input` to the backend through one pooled
`requests.Session` and wraps the answer in a response object: no
validation, no translation of items, no storage. With `stream: true` it
relays the backend's bytes as they arrive (what urllib3 hands over, one
write each) and ends with a `response.completed` event: the stack's own
cost per streamed token. Run it under the same gunicorn settings as the
gateway:

    OPENAI_API_ENDPOINT=http://127.0.0.1:9000/v1 gunicorn -c gunicorn.conf.py bench.floor_app:app
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import requests
from flask import Flask, Response, jsonify, request
from requests.adapters import HTTPAdapter

READ_SIZE = 8 * 1024  # as the gateway reads a stream (app/backends/transport.py)
COMPLETED = b'event: response.completed\ndata: {"type":"response.completed"}\n\n'
# Backend connections kept per worker: more than the c=32 points need. (The
# gateway keeps as many as a worker serves; at c=256 the floor opens a few more.)
POOL_SIZE = 100
TIMEOUT = (10.0, 600.0)

app = Flask(__name__)
chat_url = os.environ.get("OPENAI_API_ENDPOINT", "http://127.0.0.1:9000/v1") + "/chat/completions"
session = requests.Session()
session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE))


@app.post("/v1/responses")
def create():
    body = request.get_json()
    chat = {"model": body["model"], "messages": [{"role": "user", "content": body["input"]}]}
    if body.get("stream"):
        reply = session.post(chat_url, json={**chat, "stream": True}, timeout=TIMEOUT, stream=True)
        return Response(relay(reply), mimetype="text/event-stream")
    answer = session.post(chat_url, json=chat, timeout=TIMEOUT).json()
    message = {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [
            {
                "type": "output_text",
                "text": answer["choices"][0]["message"]["content"],
                "annotations": [],
            }
        ],
    }
    return jsonify(
        {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body["model"],
            "output": [message],
            "usage": answer.get("usage"),
        }
    )


def relay(reply: requests.Response) -> Iterator[bytes]:
    with reply:
        while chunk := reply.raw.read1(READ_SIZE):
            yield chunk
    yield COMPLETED
