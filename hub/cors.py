"""CORS for browser viewers, whose refused preflights are problem details like every other error."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from hub.errors import PROBLEM_JSON, BadRequest

_BODY_HEADERS = frozenset({"content-length", "content-type"})


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware; a preflight it refuses is answered as RFC 9457 problem details
    (Starlette answers it in plain text)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's answer to a preflight, its refusal rewritten as a problem."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode("utf-8", errors="replace")
        error = BadRequest(f"{reason}: not allowed by the cors settings of this hub")
        kept = {name: value for name, value in response.headers.items() if name not in _BODY_HEADERS}
        return JSONResponse(
            error.problem(), status_code=response.status_code, media_type=PROBLEM_JSON, headers=kept
        )
