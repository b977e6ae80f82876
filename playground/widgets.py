"""Gradio inputs for the schema forms: one component per `forms.Field`, one accordion per
`forms.Section`.

Bounds go into each input's info line, not into `gr.Number(minimum=, maximum=)`: Gradio's
own range error does not say which field it means, while the API's 422 names it (the UI
shows it beside the form).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.forms import Field, Section, number_step, to_widget

EMPTY_CHOICE = "empty"  # how a dropdown shows null (the schema's "empty = ..." cases)


def field_input(
    field: Field, value: Any, elem_id: str, key: tuple[Any, ...], base: Any = None
) -> gr.Component:
    """The input of one field, showing the spec value `value` (numbers step by a fraction
    of it, or of `base`, what the server fills in: see `number_step`)."""
    shown = to_widget(field, value)
    # interactive: Gradio infers it from listeners, and Run's are attached after rendering
    common = {"label": field.key, "info": field.info, "elem_id": elem_id, "interactive": True}
    # a key per form generation: without keys, Gradio 6.31 sent 0 from empty (null) numbers
    common["key"] = key
    if field.kind in ("int", "float"):
        empty = {"placeholder": "empty = default"} if field.nullable else {}
        return gr.Number(
            shown,
            precision=0 if field.kind == "int" else None,
            step=number_step(field.kind, value, base, field.default),
            **empty,
            **common,
        )
    if field.kind == "bool":
        return gr.Checkbox(bool(shown), **common)
    if field.kind == "choice":
        choices = [(c, c) for c in field.choices]
        if field.nullable:
            choices.insert(0, (EMPTY_CHOICE, ""))
        return gr.Dropdown(choices, value=shown, **common)
    hint = "numbers separated by commas" if field.kind == "list" else ""
    if field.nullable:
        hint = f"{hint}; empty = default" if hint else "empty = default"
    return gr.Textbox(shown, placeholder=hint, max_lines=1, **common)


def section_inputs(section: Section, generation: int, *, open: bool) -> list[gr.Component]:
    """An accordion holding the section's description and inputs; returns the inputs."""
    title = f"Task options: {section.name}" if section.scope == "task" else section.name
    prefix = "task" if section.scope == "task" else section.name
    inputs = []
    with gr.Accordion(
        title,
        open=open,
        elem_id=f"form-{prefix}",
        elem_classes=[f"form-generation-{generation}"],  # tells scripts a form is new
    ):
        if section.description:
            gr.Markdown(section.description, elem_classes=["form-description"])
        for field in section.fields:
            inputs.append(
                field_input(
                    field,
                    section.values.get(field.key),
                    elem_id=f"field-{prefix}-{field.key}",
                    key=(generation, prefix, field.key),
                    base=section.base.get(field.key),
                )
            )
    return inputs
