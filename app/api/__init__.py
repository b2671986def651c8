"""The HTTP layer: blueprints, request parsing helpers and error rendering."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from app.api import (
    conversations,
    dashboard,
    files,
    gateway,
    health,
    metrics,
    models,
    openapi,
    prompts,
    responses,
    scim,
    vector_stores,
)
from app.api.http import request_context
from app.errors import GatewayError, NotFound, PayloadTooLarge, error_body
from app.observe import RequestRecord

log = logging.getLogger(__name__)

DATA_PLANE = ("responses", "conversations", "files", "vector_stores", "prompts", "models")
HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def init_app(app: Flask, settings: Any) -> None:
    """Register the blueprints, the request log and the one error-rendering path."""
    json_logs = settings.server.json_logs
    blueprints = (
        responses,
        conversations,
        files,
        vector_stores,
        prompts,
        models,
        health,
        metrics,
        openapi,
        gateway,
        dashboard,
        scim,
    )
    for module in blueprints:
        app.register_blueprint(module.bp)

    @app.before_request
    def start_record() -> None:
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        g.record = RequestRecord(
            request.method,
            rule,
            labels=app.extensions["model_labels"],
            request_id=f"req_{os.urandom(16).hex()}",
        )

    @app.before_request
    def refuse_websocket() -> None:
        # Codex tries a WebSocket first when allowed; a 404 makes it fall
        # back to HTTP POST at once.
        if request.headers.get("Upgrade", "").lower() == "websocket":
            raise NotFound(
                "WebSocket transport is not supported; use HTTP POST /v1/responses.",
                code="websocket_not_supported",
            )

    @app.before_request
    def authenticate() -> None:
        # The caller first: a request without a valid key gets its 401 before
        # its body is read, as OpenAI answers.
        if request.blueprint in DATA_PLANE:
            request_context()

    @app.after_request
    def finish_record(response: Response) -> Response:
        record = g.get("record")
        if record is not None:
            response.headers["x-request-id"] = record.request_id
            record.status = response.status_code
            response.call_on_close(lambda: record.finish(json_logs))
        return response

    app.register_error_handler(GatewayError, render_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(Exception, _render_unexpected)


def render_error(error: GatewayError) -> Any:
    """Render a gateway error as an OpenAI error body with its status."""
    response = jsonify(error_body(error))
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _render_http_exception(exc: HTTPException) -> Any:
    status = exc.code or 500
    if status == 413:
        return render_error(PayloadTooLarge("The request body is too large."))
    message = exc.description or exc.name
    error = GatewayError(message, code=HTTP_ERROR_CODES.get(status), status=status)
    error.error_type = "invalid_request_error" if status < 500 else "server_error"
    return render_error(error)


def _render_unexpected(exc: Exception) -> Any:
    log.exception("unexpected error")
    return render_error(GatewayError("The server had an error while processing your request."))
