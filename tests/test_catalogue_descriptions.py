"""Catalogue descriptions (API, UI, CLI) are whole sentences, never a docstring's first line."""

from __future__ import annotations

import re

import pytest

from server.optimizers import REGISTRY
from server.tasks import TASKS

SENTENCE_END = re.compile(r"[.!?]$")


@pytest.fixture
def client(make_client):
    return make_client()


def test_every_task_description_is_its_whole_docstring_ending_a_sentence(client):
    listed = {entry["name"]: entry["description"] for entry in client.get("/api/tasks").json()}
    assert set(listed) == set(TASKS)
    for name, text in listed.items():
        assert text == " ".join(TASKS[name].__doc__.split()), name
        assert SENTENCE_END.search(text), f"{name}: {text!r} ends mid-sentence"
    # the three cuts a user met: each sentence now goes on to its end
    assert listed["rosenbrock"].endswith("the 2-D case is the classic 100 (y − x²)² + (1 − x)².")
    assert "log-spaced in [1, condition_number]" in listed["quadratic"]
    assert "a run that escapes along y reaches a minimum" in listed["saddle"]


def test_every_optimizer_description_is_a_sentence(client):
    listed = {entry["name"]: entry["description"] for entry in client.get("/api/optimizers").json()}
    assert set(listed) == set(REGISTRY)
    for name, text in listed.items():
        assert text == REGISTRY[name].description, name
        assert text[:1].isupper() and SENTENCE_END.search(text), f"{name}: {text!r}"
