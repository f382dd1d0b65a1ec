"""The API's errors: Toxiproxy's shape, ``{"error": message, "status": code}``."""

from __future__ import annotations

from typing import Any

from sockharness._core import SockharnessError

__all__ = ["APIError"]


class APIError(SockharnessError):
    """A request the API refuses: its HTTP status and a message that names the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @classmethod
    def bad_body(cls, detail: str) -> APIError:
        """400: the body is not what the endpoint takes."""
        return cls(400, f"bad request body: {detail}")

    @classmethod
    def missing(cls, name: str) -> APIError:
        """400: a required field was left out."""
        return cls(400, f"missing required field: {name}")

    @classmethod
    def proxy_not_found(cls, name: str) -> APIError:
        return cls(404, f"proxy not found: {name}")

    @classmethod
    def toxic_not_found(cls, name: str) -> APIError:
        return cls(404, f"toxic not found: {name}")

    def to_json(self) -> dict[str, Any]:
        """The error's body."""
        return {"error": self.message, "status": self.status}
