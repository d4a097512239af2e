"""The agent's OpenAI client reuses the request the SDK built for the first chat call: every later
request must be the one the SDK itself would have built (bot/model_client.py)."""

from __future__ import annotations

import openai
from openai._models import FinalRequestOptions

from bot.model_client import BoundedRetryOpenAI
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, Turn, fake_openai_fixture  # noqa: F401


def _sdk_built(client: BoundedRetryOpenAI, options: FinalRequestOptions, retries: int) -> object:
    """The request the SDK's own code builds for these options (not our template)."""
    return openai.AsyncOpenAI._build_request(client, options, retries_taken=retries)


def _chat_options(body: dict[str, object], key: str) -> FinalRequestOptions:
    options = FinalRequestOptions.construct(method="post", url="/chat/completions", json_data=body)
    options.idempotency_key = key
    return options


async def test_templated_chat_requests_equal_the_sdks_own(fake_openai: FakeOpenAI) -> None:
    client = BoundedRetryOpenAI(api_key=FAKE_API_KEY, base_url=fake_openai.base_url, timeout=7.0)
    first = {"model": "m", "messages": [{"role": "user", "content": "héllo"}], "stream": True}
    await (await client.post_chat(first)).aclose()  # a real call: platform headers, template
    assert client._template is not None
    for retries, body in enumerate([first, {**first, "messages": [], "tools": [{"a": 1}]}]):
        options = _chat_options(body, f"stainless-python-retry-{retries}")
        ours = client._build_request(options, retries_taken=retries)
        sdk = _sdk_built(client, options, retries)
        assert (ours.method, ours.url, ours.extensions) == (sdk.method, sdk.url, sdk.extensions)  # type: ignore[attr-defined]
        assert sorted(ours.headers.multi_items()) == sorted(sdk.headers.multi_items())  # type: ignore[attr-defined]
        assert ours.content == sdk.content  # type: ignore[attr-defined]
    await client.close()


async def test_other_requests_are_built_by_the_sdk(fake_openai: FakeOpenAI) -> None:
    client = BoundedRetryOpenAI(api_key=FAKE_API_KEY, base_url=fake_openai.base_url)
    await (await client.post_chat({"model": "m", "messages": [], "stream": True})).aclose()
    options = _chat_options({"model": "m"}, "k")
    options.headers = {"X-Extra": "1"}
    assert client._template_key(options) is None
    assert client._build_request(options).headers["x-extra"] == "1"
    options = _chat_options({"model": "m"}, "k")
    options.timeout = 3.0
    assert client._template_key(options) is None
    # Another key (a client copy, a refreshed token) is another template, never a stale header.
    other = client.copy(api_key="sk-other")
    await (await other.post_chat({"model": "m", "messages": [], "stream": True})).aclose()
    request = other._build_request(_chat_options({"model": "m"}, "k"))
    assert request.headers["authorization"] == "Bearer sk-other"
    await client.close()
    await other.close()


async def test_each_chat_request_carries_its_own_retry_count(
    fake_openai: FakeOpenAI,
) -> None:
    client = BoundedRetryOpenAI(api_key=FAKE_API_KEY, base_url=fake_openai.base_url, max_retries=2)
    fake_openai.queue(Turn(content="one"), Turn(content="two"))
    await (await client.post_chat({"model": "m", "messages": [], "stream": True})).aclose()
    fake_openai.fail_next(429, times=1)
    fake_openai.queue(Turn(content="three"))
    await (await client.post_chat({"model": "m", "messages": [], "stream": True})).aclose()
    assert [h.get("x-stainless-retry-count") for h in fake_openai.headers] == ["0", "0", "1"]
    same = {"x-stainless-retry-count", "Content-Length"}
    first, *later = ({k: v for k, v in h.items() if k not in same} for h in fake_openai.headers)
    assert later == [first, first]  # the SDK built the first, the template the others
    await client.close()
