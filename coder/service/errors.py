"""The service's error type: every error response is JSON ``{"error", "detail"}``."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An error response with a kind and a one-sentence detail."""

    def __init__(self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.kind, self.detail, self.headers = status, kind, detail, headers
