"""How the page says no: a refused action's message for a status line, also shown as a
toast. Shared by the Compare and Sweeps tabs."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import gradio as gr

from playground.client import ApiClient, ApiError


def refusal(message: str) -> str:
    """A refused action's message for the status line at the top, also shown as a toast
    (while a comparison runs, its live redraw replaces the status line)."""
    gr.Warning(message.replace("**", "").replace("`", ""), duration=6)  # it covers Run
    return message


def token_refusal(token: str | None, action: str) -> str:
    """What a 401 from the API means to the person at the page: no token, or a wrong one."""
    if (token or "").strip():
        return refusal(f"**Not {action}** — the server refused this token: check **Server token**")
    return refusal(f"**Not {action}** — this server needs its token: enter the server token above")


def cancel_as_user(
    client: AbstractContextManager[ApiClient],
    token: str,
    cancel: Callable[[ApiClient], Any],
    done: str,
) -> str:
    """Cancel with the user's own client; a 401 is said as the token's fault."""
    try:
        with client as api:
            cancel(api)
    except ApiError as e:
        if e.status == 401:
            return token_refusal(token, "cancelled")
        return f"Cancel failed: {e.detail}"
    return done
