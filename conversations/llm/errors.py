"""Errors of the LLM client and the turn pipeline."""

from __future__ import annotations


class LLMError(Exception):
    """One LLM request failed after the SDK's retries.

    `transient` errors (timeouts, connection errors, 429, 5xx, a garbled
    response) may succeed later; permanent ones (400, 401, 403, 404) will not
    until someone changes the configuration or the request.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status_code: int | None = None,
        latency_ms: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status_code = status_code
        self.latency_ms = latency_ms
        # Seconds the provider asked us to wait (Retry-After on a 429), when it said.
        self.retry_after = retry_after

    def __str__(self) -> str:
        kind = "transient" if self.transient else "permanent"
        status = f" (HTTP {self.status_code})" if self.status_code else ""
        return f"{kind} LLM error{status}: {self.message}"


class LLMUnavailable(Exception):
    """A call the turn cannot do without (stage selection or the reply) failed.

    Raised by `turn_run` after the failing call is in the ledger. The caller
    hands the conversation to staff; the customer's messages stay unanswered
    and can be reprocessed once the LLM is back.
    """

    def __init__(self, message: str, *, transient: bool, llm_call_ids: list | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.llm_call_ids = llm_call_ids or []
