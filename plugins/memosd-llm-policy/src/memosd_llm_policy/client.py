"""One chat-completions request over urllib, bounded in time and size, with errors sorted for retrying."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from .config import LlmConfig
from .errors import RequestFailed

MAX_RESPONSE_BYTES = 4 << 20
"""An answer larger than this is not a chat completion we asked for."""
MAX_RETRY_AFTER_S = 30.0
_USER_AGENT = "memosd-llm-policy/0.1"


class TransientError(Exception):
    """A failure worth retrying: connection trouble, a timeout, 429, 5xx, or a garbled 200."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True, slots=True)
class Completion:
    """The parts of a chat-completions answer the policy uses."""

    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool
    """False when the server sent no ``usage``; the token counts are then estimates (characters / 4)."""
    requests: int
    """HTTP requests this completion took (2 when the server refused ``response_format`` first)."""


class ChatClient:
    """Posts chat-completions requests to the configured endpoint."""

    def __init__(self, config: LlmConfig):
        self.config = config
        host = (urlsplit(config.url).hostname or "").lower()
        # A local server must never be reached through a proxy from the environment (it could not
        # see 127.0.0.1); a remote API keeps the usual http(s)_proxy behaviour.
        proxies = {} if host in ("localhost", "::1") or host.startswith("127.") else None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        self._lock = threading.Lock()
        self._json_mode = config.json_mode != "off"

    def complete(self, messages: list[dict[str, str]], deadline: float) -> Completion:
        """One completion for ``messages``; raises TransientError (retry) or RequestFailed (do not)."""
        with self._lock:
            json_mode = self._json_mode
        try:
            return self._complete(messages, deadline, json_mode, requests=1)
        except RequestFailed as exc:
            if not (json_mode and self.config.json_mode == "auto" and exc.status == 400
                    and "response_format" in str(exc)):
                raise
        # The server does not know response_format: ask again without it, and from now on.
        with self._lock:
            self._json_mode = False
        return self._complete(messages, deadline, False, requests=2)

    def _complete(self, messages: list[dict[str, str]], deadline: float, json_mode: bool,
                  requests: int) -> Completion:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "stream": False,
        }
        if self.config.seed is not None:
            body["seed"] = self.config.seed
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        answer = self._post(body, deadline)
        return _completion(answer, messages, requests)

    def _post(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientError("deadline reached before the request could be sent")
        timeout = min(self.config.timeout_s, remaining)
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        request = urllib.request.Request(self.config.endpoint, data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                raw = _read_bounded(response, deadline)
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (TimeoutError, socket.timeout):
            raise TransientError(f"no answer within {timeout:.3g}s (MEMOSD_LLM_TIMEOUT_S)") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise TransientError(f"no connection within {timeout:.3g}s (MEMOSD_LLM_TIMEOUT_S)") from None
            raise TransientError(f"cannot reach {self.config.endpoint}: {reason}") from None
        except (http.client.HTTPException, OSError) as exc:
            raise TransientError(f"connection to {self.config.endpoint} failed: {type(exc).__name__}: {exc}") \
                from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise TransientError(f"the endpoint answered 200 with a body that is not JSON: {raw[:120]!r}") \
                from None
        if not isinstance(answer, dict):
            raise TransientError("the endpoint answered 200 with JSON that is not an object")
        return answer


def _read_bounded(response: http.client.HTTPResponse, deadline: float) -> bytes:
    """The body, read in chunks so that a server trickling bytes cannot outlast the deadline."""
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("deadline reached while reading the answer")
        chunk = response.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise RequestFailed(f"the answer exceeds {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)


def _http_error(exc: urllib.error.HTTPError) -> Exception:
    """429, 408 and 5xx are worth retrying; any other status is a request the server will not take."""
    try:
        detail = exc.read(2048).decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - the error body is only decoration for the message
        detail = ""
    finally:
        exc.close()
    message = f"HTTP {exc.code} from the endpoint" + (f": {detail[:300]}" if detail else "")
    if exc.code in (408, 429) or exc.code >= 500:
        return TransientError(message, retry_after=_retry_after(exc.headers), status=exc.code)
    return RequestFailed(message, status=exc.code)


def _retry_after(headers: Message | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from these servers, the usual back-off applies


def _completion(answer: dict[str, Any], messages: list[dict[str, str]], requests: int) -> Completion:
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = answer.get("error")
        raise TransientError(f"the answer has no choices{f': {error}' if error else ''}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise TransientError("the answer's first choice has no text content")
    finish = choices[0].get("finish_reason")
    usage = answer.get("usage")
    prompt, completion = _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens")
    reported = prompt is not None or completion is not None
    if not reported:
        # Without usage the budget still needs a figure: about four characters per token.
        prompt = sum(len(m["content"]) for m in messages) // 4
        completion = len(content) // 4
    return Completion(content=content, finish_reason=finish if isinstance(finish, str) else None,
                      prompt_tokens=prompt or 0, completion_tokens=completion or 0,
                      usage_reported=reported, requests=requests)


def _tokens(usage: Any, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
