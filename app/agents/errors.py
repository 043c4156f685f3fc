"""Provider failures as the clear codes users see, and whether retrying can help."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import openai


@dataclass
class ExecutionFailure(Exception):
    """Ends an execution with ``status`` (failed, timed_out, cancelled) and a code."""

    code: str
    message: str
    transient: bool = False
    status: str = "failed"

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def classify(error: BaseException) -> ExecutionFailure:
    """Map what the openai client (under LangChain) raised to a code and a retry decision."""
    if isinstance(error, ExecutionFailure):
        return error
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ExecutionFailure("provider_auth_failed", "The AI provider refused the API key; "
                                "check the provider key in the settings.")
    if isinstance(error, openai.RateLimitError):
        if getattr(error, "code", None) == "insufficient_quota":
            return ExecutionFailure("provider_quota_exhausted",
                                    "The AI provider account has no credit left.")
        return ExecutionFailure("provider_rate_limited",
                                "The AI provider is rate limiting requests.", transient=True)
    if isinstance(error, openai.APITimeoutError):
        return ExecutionFailure("provider_timeout", "The AI provider did not answer in time.",
                                transient=True)
    blocked = _blocked_address(error)
    if blocked is not None:
        return ExecutionFailure("provider_address_blocked", f"The provider base URL cannot be "
                                f"used now: {blocked}. Change it in the AI provider settings.")
    if isinstance(error, openai.APIConnectionError | httpx.TransportError):
        return ExecutionFailure("provider_unavailable", "The AI provider could not be reached "
                                "or dropped the connection.", transient=True)
    if isinstance(error, openai.BadRequestError):
        body_code = getattr(error, "code", None)
        if body_code == "context_length_exceeded" or "context length" in str(error).lower():
            return ExecutionFailure("context_too_long", "The conversation is longer than the "
                                    "model's context window.")
        return ExecutionFailure("provider_rejected", f"The AI provider rejected the request: "
                                f"{getattr(error, 'message', error)}")
    if isinstance(error, openai.NotFoundError):
        return ExecutionFailure("model_not_found", "The AI provider does not know this model.")
    if isinstance(error, openai.APIStatusError):
        if error.status_code >= 500:
            return ExecutionFailure("provider_unavailable",
                                    f"The AI provider failed (HTTP {error.status_code}).",
                                    transient=True)
        return ExecutionFailure("provider_error",
                                f"The AI provider answered HTTP {error.status_code}.")
    return ExecutionFailure("internal_error", "The execution failed unexpectedly.")


def _blocked_address(error: BaseException) -> BaseException | None:
    """The SSRF guard's refusal behind a connection error (the SDK wraps it), if any."""
    from app.integrations.ssrf import SsrfBlocked

    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, SsrfBlocked):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
