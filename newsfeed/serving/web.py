"""The web service: ``GET /feed/{user_id}?limit=N`` in FastAPI, around a framework-free handler that
validates the raw request (so validation is testable without FastAPI)."""

from __future__ import annotations

import re
from typing import Any

from newsfeed.serving.server import MAX_LIMIT, FeedServer

#: An integer as a client writes it in a URL: an optional minus sign and ASCII digits, at most 18 of them.
INTEGER = re.compile(r"-?[0-9]{1,18}")


class RequestError(Exception):
    """A request the service refuses, with its HTTP status and a message that says what is accepted."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_request(server: FeedServer, user_id: str, limit: str) -> tuple[int, int]:
    """Validate the raw path and query values; raise ``RequestError`` (4xx) for anything the service refuses."""
    # Plain ASCII digits only: int() would also read " 10 ", "1_0" and other scripts' digits ("٣" is 3).
    if not isinstance(user_id, str) or not INTEGER.fullmatch(user_id):
        raise RequestError(422, f"user_id={user_id!r} is invalid: user_id accepts an integer id")
    if not isinstance(limit, str) or not INTEGER.fullmatch(limit) or len(limit) > 4:
        raise RequestError(422, f"limit={limit!r} is invalid: limit accepts an integer from 1 to {MAX_LIMIT}")
    user, size = int(user_id), int(limit)
    if not 1 <= size <= MAX_LIMIT:
        raise RequestError(422, f"limit={size} is invalid: limit accepts an integer from 1 to {MAX_LIMIT}")
    if user not in server.known_users:
        raise RequestError(404, f"user_id={user} is unknown: user_id accepts the id of a person who has signed up")
    return user, size


def handle(server: FeedServer, user_id: str, limit: str = "10") -> tuple[int, dict[str, Any]]:
    """Answer ``GET /feed/{user_id}?limit=N``: (HTTP status, JSON body). Errors are 4xx JSON, never a crash."""
    try:
        user, size = parse_request(server, user_id, limit)
    except RequestError as error:
        return error.status, {"error": error.message}
    feed = server.feed(user, size)
    posts = [{"post_id": int(row.post_id), "author_id": int(row.author_id), "topic": str(row.topic),
              "source": str(row.source), "score": round(float(row.score), 6)} for row in feed.itertuples()]
    return 200, {"user_id": user, "cold_start": server.is_cold(user), "served_at": server.index.now.isoformat(),
                 "posts": posts}


def create_app(server: FeedServer) -> Any:
    """A FastAPI application serving ``GET /feed/{user_id}?limit=N`` from ``server``, and ``GET /health``."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="Feed ranking, executed")

    @app.get("/health")
    def health() -> dict[str, str]:
        """Ready to serve: the snapshot's time (a load balancer or a load test polls this before sending)."""
        return {"status": "ok", "served_at": server.index.now.isoformat()}

    @app.get("/feed/{user_id}")
    def feed(user_id: str, limit: str = "10") -> JSONResponse:
        status, body = handle(server, user_id, limit)
        return JSONResponse(body, status_code=status)

    return app
