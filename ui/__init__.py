"""Gradio Blocks for NExT-OMNI chat. Never imports torch: it talks to the engine and sessions."""

from ui.app import build_app

__all__ = ["build_app"]
