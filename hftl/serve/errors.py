"""The one error type a request handler raises: an HTTP status, a message for the client and a metrics reason."""

from __future__ import annotations


class RequestRejected(Exception):
    """A request the server will not run; becomes ``{"error": message}`` with ``status``.

    Attributes:
        status: HTTP status (400 malformed, 413 too large, 415 wrong content type, 422 invalid input, 503 busy).
        reason: Short label for the ``hftl_serve_errors_total`` metric.
        headers: Extra response headers (``Retry-After`` for 503).
    """

    def __init__(self, status: int, message: str, reason: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or {}


def bad_request(message: str) -> RequestRejected:
    return RequestRejected(400, message, "malformed")


def too_large(message: str) -> RequestRejected:
    return RequestRejected(413, message, "too_large")


def unsupported_type(message: str) -> RequestRejected:
    return RequestRejected(415, message, "content_type")


def invalid_input(message: str) -> RequestRejected:
    return RequestRejected(422, message, "invalid_input")


def busy(message: str, retry_after_s: int) -> RequestRejected:
    return RequestRejected(503, message, "queue_full", {"Retry-After": str(retry_after_s)})
