"""PSGD Playground's face: the `psgd-playground` command line and reusable plotly figures.

`playground.cli` is the entry point; `playground.figures` turns job events into plotly
figures (pure functions, shared by the CLI's static plots and the UI).
"""
