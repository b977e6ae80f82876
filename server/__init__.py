"""PSGD Playground backend: task zoo, optimizer registry and the job runner.

Layering: `server` may import `psgd`, never `playground` or gradio.
"""
