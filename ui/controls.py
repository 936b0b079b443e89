"""The generation settings on the page: one control per setting, read together into one dict
(setting name -> the control's value) that the chat handler gets as a single input.

The reply-kind switch sits by the message box, the rest in the Settings accordion; both are
in the same dict, so a handler never depends on the order of the controls on the page.
"""

from __future__ import annotations

import gradio as gr

from nextomni.engine.settings import Settings

REPLY_KINDS = ("auto", "text", "image", "speech")  # auto: the model chooses
DECODINGS = ("DFM", "AR baseline")


def reply_control() -> gr.Radio:
    return gr.Radio(list(REPLY_KINDS), value="auto", label="reply with (auto: the model "
                    "chooses)", elem_id="reply-kind", scale=0, min_width=440)


def settings_controls() -> dict[str, gr.components.Component]:
    """The Settings accordion's controls by setting name, at Settings' defaults; each has the
    element id `set-<name>` (dashes for underscores)."""
    d = Settings()
    return {
        "seed": gr.Number(d.seed, label="seed", precision=0, minimum=0, elem_id="set-seed"),
        "steps": gr.Slider(1, 64, d.steps, step=1, label="steps per block", elem_id="set-steps"),
        "image_steps": gr.Slider(1, 64, d.image_steps, step=1, label="steps for an image",
                                 elem_id="set-image-steps"),
        "block_size": gr.Number(0, label="block size (0: as trained)", precision=0, minimum=0,
                                elem_id="set-block-size"),
        "guidance": gr.Slider(0, 5, d.guidance, step=0.25, label="guidance (images)",
                              elem_id="set-guidance"),
        "speech_guidance": gr.Slider(0, 5, d.speech_guidance, step=0.25,
                                     label="guidance (speech)", elem_id="set-speech-guidance"),
        "max_tokens": gr.Slider(8, 512, d.max_tokens, step=8, label="max reply tokens",
                                elem_id="set-max-tokens"),
        "temperature": gr.Slider(0, 2, d.temperature, step=0.05, label="temperature (0: greedy)",
                                 elem_id="set-temperature"),
        "confidence": gr.Slider(0, 1, d.confidence, step=0.01, label="stop a block at confidence",
                                elem_id="set-confidence"),
        "settle": gr.Checkbox(d.settle, label="stop a block once its tokens settle",
                              elem_id="set-settle"),
        "cache": gr.Checkbox(d.cache, label="key/value cache", elem_id="set-cache"),
        "dynamic": gr.Checkbox(d.dynamic, label="dynamic length", elem_id="set-dynamic"),
        "mode": gr.Radio(list(DECODINGS), value=DECODINGS[0], label="decoding",
                         elem_id="set-mode"),
    }


class SettingsForm:
    """Named controls, read as one dict by `read` (wired with `controls` as its inputs)."""

    def __init__(self, controls: dict[str, gr.components.Component]):
        self.names = tuple(controls)
        self.controls = list(controls.values())

    def read(self, *values) -> dict:
        return dict(zip(self.names, values, strict=True))
