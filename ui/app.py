"""The page layout. Handlers are plain functions elsewhere; this module only wires them."""

from __future__ import annotations

import gradio as gr

TITLE = "NExT-OMNI chat"
INTRO = ("Any-to-any chat driven by discrete flow matching: text, images, audio and video in; "
         "text, images and speech out.")


def build_app(status: str) -> gr.Blocks:
    """The app; `status` says which model is loaded, or why none is."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        gr.Markdown(status, elem_id="model-status")
    return demo
