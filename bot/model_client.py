"""The OpenAI client the agent uses: the SDK's own retries, bounded by what a chat user waits,
and its requests built once per process.

Imported only when an OpenAI agent is built (the offline answerer never loads the SDK). The
bound itself is shared with the OpenAI embedder (``storage/openai_retries.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2

from storage.openai_retries import MAX_RETRY_WAIT, BoundedRetry
from storage.openai_sdk import openai

if TYPE_CHECKING:
    from openai._models import FinalRequestOptions

__all__ = ["MAX_RETRY_WAIT", "BoundedRetryOpenAI"]

# Headers that differ between two requests the template serves (set per request below).
_PER_REQUEST = {b"content-length", b"x-stainless-retry-count"}


@dataclass(frozen=True, slots=True)
class _Template:
    """What the SDK built for the first plain JSON POST to one path: URL, headers (without
    the per-request ones) and extensions (the timeouts)."""

    url: httpx2.URL
    headers: list[tuple[bytes, bytes]]
    extensions: dict[str, Any]

    @classmethod
    def of(cls, request: httpx2.Request, idempotency_header: str | None) -> _Template:
        skip = _PER_REQUEST | (
            {idempotency_header.lower().encode()} if idempotency_header else set()
        )
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in skip]
        return cls(request.url, headers, dict(request.extensions))


class BoundedRetryOpenAI(BoundedRetry, openai.AsyncOpenAI):
    """``AsyncOpenAI`` that does not wait out a ``Retry-After`` longer than ``max_retry_wait``:
    the apology (the model is busy) comes at once instead of after minutes.

    It also builds a chat request the way the SDK built the previous one: the SDK merges the
    same default, auth and platform headers, parses the same URL and converts the same timeout
    for every call (about 0.2 ms of CPU per answer, as much as our own code around it). The
    first plain JSON POST to a path is built by the SDK and kept as a template; later ones
    reuse its URL, headers and timeouts with their own body, idempotency key and retry count.
    Anything else (custom headers, query parameters, files, another timeout, other auth
    headers) is built by the SDK as before. Retries, errors and streaming stay the SDK's."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._chat_options = openai._models.FinalRequestOptions.construct(
            method="post", url="/chat/completions", content=None, files=None
        )
        self._template: tuple[tuple[Any, ...], _Template] | None = None

    async def post_chat(self, body: dict[str, Any]) -> httpx2.Response:
        """``post("/chat/completions", body=body, cast_to=httpx2.Response, stream=True)``,
        with the options object copied from one built at start-up instead of constructed
        (validated) for every call."""
        options = self._chat_options.model_copy(update={"json_data": body})
        response: httpx2.Response = await self.request(httpx2.Response, options, stream=True)
        return response

    def _build_request(
        self, options: FinalRequestOptions, *, retries_taken: int = 0
    ) -> httpx2.Request:
        key = self._template_key(options)
        if key is None:
            return super()._build_request(options, retries_taken=retries_taken)
        if self._template is None or self._template[0] != key:
            request = super()._build_request(options, retries_taken=retries_taken)
            self._template = (key, _Template.of(request, self._idempotency_header))
            return request
        template = self._template[1]
        headers = [*template.headers, (b"x-stainless-retry-count", str(retries_taken).encode())]
        if self._idempotency_header and options.idempotency_key:
            headers.append((self._idempotency_header.encode(), options.idempotency_key.encode()))
        cookies = self._client.cookies  # what the server set, sent back as the SDK's client does
        return httpx2.Request(
            "POST",
            template.url,
            headers=headers,
            cookies=cookies if cookies else None,
            content=openai._utils._json.openapi_dumps(options.json_data),
            extensions=template.extensions,
        )

    def _template_key(self, options: FinalRequestOptions) -> tuple[Any, ...] | None:
        """What the template depends on, for a plain JSON POST; None for anything else."""
        if (
            options.method.lower() != "post"
            or not isinstance(options.json_data, dict)
            or options.content is not None
            or options.files is not None
            or options.extra_json is not None
            or options.params
            or not isinstance(options.headers, openai.NotGiven)
            or not isinstance(options.timeout, openai.NotGiven)
        ):
            return None
        auth = self._auth_headers(options.security)
        return (options.url, tuple(auth.items()), tuple(sorted(options.security.items())))
