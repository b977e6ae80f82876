"""How the page says no: a refused action's message for a status line, also shown as a
toast. Shared by the Compare and Sweeps tabs."""

from __future__ import annotations

import gradio as gr


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
