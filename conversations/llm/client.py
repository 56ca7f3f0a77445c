"""The one module that talks to the LLM provider (any OpenAI-compatible server).

The SDK is the only retry layer: it retries connection errors, timeouts, 408,
409, 429 and 5xx with exponential backoff and honours Retry-After. Celery must
not retry on top of it, or the attempts multiply; a turn that still fails is
handed to staff instead.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai
from django.conf import settings

from conversations.llm.errors import LLMError

logger = logging.getLogger(__name__)

# Two retries after the first attempt (the SDK's default), with its backoff.
DEFAULT_MAX_RETRIES = 2
MAX_ERROR_CHARS = 2000
OPENAI_HOST = "api.openai.com"


@dataclass(frozen=True)
class LLMRequest:
    messages: list[dict[str, str]]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    # `{"type": "json_schema", "json_schema": {...}}` for structured output, or None for text.
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True)
class LLMResult:
    text: str
    # The content parsed as JSON when structured output was asked for and it parses.
    json: Any
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    latency_ms: int
    model: str
    finish_reason: str | None = None


# What the pipeline calls: `llm_complete` in production, a stub in pure unit tests.
LLMCallable = Callable[[LLMRequest], LLMResult]


def llm_configured() -> bool:
    """Whether AI replies are on: an API key or a base URL (a keyless local server) is set."""
    return bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)


def llm_base_url_host() -> str:
    """The provider's host (and port) for the ledger: never the path, user info or key."""
    base_url = settings.OPENAI_BASE_URL
    if not base_url:
        return OPENAI_HOST
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


@functools.lru_cache(maxsize=8)
def _client(base_url: str, api_key: str, timeout: float, max_retries: int) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base_url or None,
        # A local server often needs no key, but the SDK insists on one.
        api_key=api_key or "not-needed",
        timeout=timeout,
        max_retries=max_retries,
    )


def llm_client() -> openai.OpenAI:
    """The SDK client for the current settings; one per configuration, shared by threads."""
    return _client(
        settings.OPENAI_BASE_URL or "",
        settings.OPENAI_API_KEY or "",
        float(settings.LLM_TIMEOUT_SECONDS),
        int(getattr(settings, "LLM_MAX_RETRIES", DEFAULT_MAX_RETRIES)),
    )


def _classify(exc: Exception, latency_ms: int) -> LLMError:
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("the request timed out", transient=True, latency_ms=latency_ms)
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"connection error: {exc}", transient=True, latency_ms=latency_ms)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        transient = status in (408, 409, 429) or status >= 500
        return LLMError(
            str(exc.message)[:MAX_ERROR_CHARS],
            transient=transient,
            status_code=status,
            latency_ms=latency_ms,
            retry_after=_retry_after(exc.response.headers) if status == 429 else None,
        )
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        # A garbled body from the server (or a proxy in front of it); worth another try later.
        return LLMError(f"malformed response: {exc}"[:MAX_ERROR_CHARS], transient=True, latency_ms=latency_ms)
    return LLMError(f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], transient=False, latency_ms=latency_ms)


def _retry_after(headers: Any) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 3600 else None


def _strip_fences(text: str) -> str:
    """Some models wrap JSON in a Markdown code fence even when asked not to."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if stripped.rstrip().endswith("```"):
            stripped = stripped.rstrip()[:-3]
    return stripped.strip()


def _parse_json(text: str) -> Any:
    try:
        return json.loads(_strip_fences(text))
    except ValueError:
        return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def llm_complete(request: LLMRequest) -> LLMResult:
    """One chat completion. Raises LLMError (with `transient`) when it fails after the SDK's retries."""
    kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages}
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.max_tokens is not None:
        # OpenAI's own API wants max_completion_tokens (newer models refuse max_tokens);
        # compatible servers (vLLM, llama.cpp, Ollama) all understand max_tokens.
        key = "max_tokens" if settings.OPENAI_BASE_URL else "max_completion_tokens"
        kwargs[key] = request.max_tokens
    if request.response_format is not None:
        kwargs["response_format"] = request.response_format

    started = time.monotonic()
    try:
        # The plain POST of the SDK (its retries, backoff and errors, as `chat.completions.create`
        # has), minus the typed request transform and response models: they cost more CPU than
        # the rest of a turn's work, for a body that is plain JSON both ways.
        body = llm_client().post("/chat/completions", body=kwargs, cast_to=object)
        latency_ms = int((time.monotonic() - started) * 1000)
        if not isinstance(body, dict) or "choices" not in body:
            raise ValueError("the response is not a chat completion")
        choices = body.get("choices") or []
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ValueError("the response has no choices")
        choice = choices[0]
        message = choice.get("message")
        text = (message.get("content") if isinstance(message, dict) else None) or ""
        if not isinstance(text, str):
            raise ValueError("the reply's content is not text")
    except Exception as exc:
        error = _classify(exc, int((time.monotonic() - started) * 1000))
        logger.warning("LLM request failed: %s", error, extra={"model": request.model})
        raise error from exc

    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    details = (
        usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    )
    model = body.get("model")
    return LLMResult(
        text=text,
        json=_parse_json(text) if request.response_format is not None else None,
        prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
        completion_tokens=_int_or_none(usage.get("completion_tokens")),
        cached_tokens=_int_or_none(details.get("cached_tokens")),
        latency_ms=latency_ms,
        model=model if isinstance(model, str) and model else request.model,
        finish_reason=choice.get("finish_reason"),
    )
