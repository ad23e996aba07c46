"""Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...).

Requests run concurrently on an asyncio loop in a worker thread, bounded by a semaphore.
Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter
(honouring Retry-After); any other 4xx stops the run at once, since retrying cannot fix a
wrong model name or key. A 200 answer that is no completion (a proxy's HTML login page,
broken JSON, no choices) is retried too, but only twice until the endpoint has answered
properly once: it is most likely the wrong URL. The API key never appears in a message
this module raises.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import queue
import random
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from synalign.backends.llm.base import (
    Completion,
    OnResult,
    Prompt,
    Request,
    SamplingParams,
    generate,
    sample_seed,
)
from synalign.errors import SynAlignError

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class LLMRequestError(SynAlignError):
    """The endpoint refused a request in a way retrying cannot fix, or never came back."""


class NotACompletionError(Exception):
    """A 200 answer that is not an OpenAI-compatible completion; the message says what it
    was instead ("an HTML page", "invalid JSON", "no choices")."""


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The answer's JSON object, or NotACompletionError describing what came instead."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        raise NotACompletionError("an empty body")
    try:
        data = json.loads(text)
    except ValueError:
        if "html" in content_type.lower() or text[:100].lower().startswith(("<!doctype", "<html")):
            title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
            named = _one_line(html.unescape(title.group(1)), 60) if title else ""
            what = f"an HTML page titled {named!r}" if named else "an HTML page"
            raise NotACompletionError(what) from None
        raise NotACompletionError(f"invalid JSON starting {_one_line(text, 40)!r}") from None
    if not isinstance(data, dict):
        raise NotACompletionError(f"a JSON {type(data).__name__} instead of an object")
    return data


def _parse_completion(data: dict[str, Any], chat: bool) -> Completion:
    """The first choice's text, finish reason and token usage, checked field by field: an
    answer is never turned into a silently empty sample."""
    error = data.get("error")
    if error:
        detail = error.get("message") if isinstance(error, dict) else error
        raise NotACompletionError(f"an error object: {_one_line(str(detail), 120)}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise NotACompletionError("no choices" if not choices else "'choices' is not a list")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise NotACompletionError("a choice that is not an object")
    finish = choice.get("finish_reason")
    if chat:
        message = choice.get("message")
        if not isinstance(message, dict):
            raise NotACompletionError("a choice without a message")
        text, field = message.get("content"), "message.content"
    else:
        text, field = choice.get("text"), "text"
    # an empty answer cut at the token limit (or withheld by a content filter) is an
    # answer: the sample filters count it
    if text is None and finish not in ("length", "content_filter"):
        raise NotACompletionError(f"a choice with no {field}")
    if text is not None and not isinstance(text, str):
        raise NotACompletionError(f"{field} is a {type(text).__name__}, not text")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}

    def count(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, int | float) else 0

    return Completion(
        text=text or "",
        prompt_tokens=count("prompt_tokens"),
        completion_tokens=count("completion_tokens"),
        finish_reason=str(finish or "stop"),
    )


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _connect_reason(exc: BaseException) -> str | None:
    """The innermost OS-level reason a connection failed ("Connection refused", ...)."""
    seen: set[int] = set()
    reason: str | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            if isinstance(current.errno, int) and current.errno > 0:
                reason = os.strerror(current.errno)
            else:
                reason = current.strerror or str(current) or reason
        current = current.__cause__ or current.__context__
    return reason


class OpenAICompatibleLLM:
    """Chat and completions endpoints of an OpenAI-compatible server."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        chat_template: bool = True,
    ) -> None:
        self._model = model
        self.base_url = base_url
        self._api_key = api_key or "unused"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._chat_template = chat_template
        self.retries = 0
        self._retry_lock = threading.Lock()
        self._answered = False  # has the endpoint answered once? then a lost connection is
        # worth the full retry budget; before that, a refused one is most likely a wrong URL

    @property
    def backend(self) -> str:
        return "openai"

    @property
    def model(self) -> str:
        return self._model

    @property
    def has_chat_template(self) -> bool:
        return self._chat_template

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key != "unused":
            # whole tokens only, so that a short key cannot mangle ordinary words
            key = re.escape(self._api_key)
            text = re.sub(rf"(?<![\w-]){key}(?![\w-])", "***", text)
        return text

    def generate(
        self, prompt: Prompt, params: SamplingParams, indices: list[int]
    ) -> list[Completion]:
        return generate(self, prompt, params, indices)

    def stream(
        self, requests: Sequence[Request], on_result: OnResult | None = None
    ) -> Iterator[tuple[int, Completion]]:
        if not requests:
            return
        results: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def worker() -> None:
            try:
                asyncio.run(self._run_all(requests, results, on_result, stop))
            except BaseException as exc:  # handed to the consuming thread
                results.put(("error", exc))
            finally:
                results.put(("done", None))

        thread = threading.Thread(target=worker, name="synalign-llm", daemon=True)
        thread.start()
        try:
            while True:
                kind, payload = results.get()
                if kind == "done":
                    break
                if kind == "error":
                    raise payload
                yield payload
        finally:
            stop.set()

    async def _run_all(
        self,
        requests: Sequence[Request],
        results: queue.Queue[tuple[str, Any]],
        on_result: OnResult | None,
        stop: threading.Event,
    ) -> None:
        import openai

        client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=self.timeout,
            max_retries=0,
        )
        gate = asyncio.Semaphore(max(1, self.concurrency))

        async def one(pos: int, request: Request) -> None:
            async with gate:
                if stop.is_set():
                    return
                completion = await self._with_retries(client, request, stop)
                if completion is None:
                    return
                if on_result:
                    on_result(pos, completion)
                results.put(("item", (pos, completion)))

        try:
            async with asyncio.TaskGroup() as group:
                for pos, request in enumerate(requests):
                    group.create_task(one(pos, request))
        except BaseExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        finally:
            await client.close()

    async def _with_retries(
        self, client: Any, request: Request, stop: threading.Event
    ) -> Completion | None:
        import openai

        attempt = 0
        while True:
            try:
                completion = await self._once(client, request)
                self._answered = True
                return completion
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                error: Exception = exc
                wait = None
                refused = isinstance(exc, openai.APIConnectionError) and not isinstance(
                    exc, openai.APITimeoutError
                )
                if refused and not self._answered and attempt >= min(self.max_retries, 2):
                    raise LLMRequestError(self._unreachable(error, attempt)) from None
            except openai.APIStatusError as exc:
                if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                    raise LLMRequestError(self._describe(exc)) from None
                error, wait = exc, _retry_after(exc)
            except NotACompletionError as exc:
                error, wait = exc, None
                budget = self.max_retries if self._answered else min(self.max_retries, 2)
                if attempt >= budget and not stop.is_set():
                    raise LLMRequestError(self._not_a_completion(exc, attempt + 1)) from None
            if attempt >= self.max_retries or stop.is_set():
                if stop.is_set():
                    return None
                raise LLMRequestError(self._unreachable(error, attempt)) from None
            delay = wait if wait is not None else min(self.max_backoff, self.backoff * 2**attempt)
            delay *= 1.0 if wait is not None else 0.5 + random.random()
            with self._retry_lock:
                self.retries += 1
            attempt += 1
            await asyncio.sleep(delay)

    def _unreachable(self, error: Exception, retries: int) -> str:
        import openai

        url = self.base_url or "https://api.openai.com/v1 (the default)"
        if isinstance(error, openai.APITimeoutError):
            why = f"no answer within llm.timeout = {self.timeout:g} s"
        elif isinstance(error, openai.APIConnectionError):
            why = f"cannot connect: {_connect_reason(error) or error}"
        else:
            why = f"{type(error).__name__}: {error}"
        return (
            f"LLM endpoint {url} still failing after {retries} retries"
            f" ({self._redact(why)[:200]}); check that the server is up and llm.base_url"
            " is right, then re-run: completed samples are kept"
        )

    def _not_a_completion(self, error: NotACompletionError, attempts: int) -> str:
        url = self.base_url or "https://api.openai.com/v1 (the default)"
        return (
            f"LLM endpoint {url} answered with something that is not an OpenAI-compatible"
            f" completion ({self._redact(str(error))}) after {attempts} attempts; check that"
            " llm.base_url is the API root of an OpenAI-compatible server (usually ending"
            " in /v1)"
        )

    def _describe(self, exc: Any) -> str:
        status = exc.status_code
        detail = self._redact(str(getattr(exc, "message", "") or exc))[:300]
        hint = {
            401: "check the API key (llm.api_key or the variable named by llm.api_key_env)",
            403: "the key is not allowed to use this model or endpoint",
            404: f"check the model name ({self._model!r}) and the base URL ({self.base_url})",
            400: "the server rejected the request parameters",
        }.get(status, "the server refused the request")
        return f"LLM endpoint {self.base_url} answered {status}: {detail}; {hint}"

    async def _once(self, client: Any, request: Request) -> Completion:
        params, prompt = request.params, request.prompt
        kwargs: dict[str, Any] = {
            "model": self._model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": sample_seed(params.seed, request.index),
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.min_p is not None:
            kwargs["extra_body"] = {"min_p": params.min_p}
        if prompt.messages is not None:
            messages = [{"role": r, "content": c} for r, c in prompt.messages]
            create = client.chat.completions.with_raw_response.create
            raw = await create(messages=messages, **kwargs)
        else:
            raw = await client.completions.with_raw_response.create(prompt=prompt.text, **kwargs)
        response = raw.http_response
        data = _json_body(response.content, response.headers.get("content-type", ""))
        return _parse_completion(data, chat=prompt.messages is not None)
