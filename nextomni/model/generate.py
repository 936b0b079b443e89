"""Plain fixed-length DFM generation: a prompt, a response canvas of a known layout, the Euler
sampler. (The engine adds dynamic length, caching and streaming on top of the same pieces.)

Canvas layouts:
    text   n text positions (the model writes its answer, `<eos>`, then `<pad>`)
    image  <|image_start|> + grid^2 image positions + <|image_end|> <eos> + <pad>...
    audio  <|audio_start|> + n audio positions + <|audio_end|> <eos> + <pad>...
Markers and `<eos>` of image / audio canvases are fixed: only the codes are denoised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nextomni.dfm import choose_x1, euler_sample
from nextomni.model.config import AUDIO, IMAGE, TEXT
from nextomni.model.modeling import OmniModel
from nextomni.model.sequence import Sequence, SequenceBuilder, collate, variable_spaces
from nextomni.tokenizers.special import (
    AUDIO_END, AUDIO_START, EOS, IMAGE_END, IMAGE_START, PAD,
)

LAYOUTS = ("text", "image", "audio")


@dataclass
class Generated:
    text_ids: list[int]         # response text up to <eos>
    image_codes: Tensor | None  # [grid^2, G] or None
    audio_codes: Tensor | None  # [P, G] without trailing silence, or None
    tokens: Tensor              # final canvas ids [L_canvas, G]


def canvas(builder: SequenceBuilder, layout: str, length: int) -> tuple[Sequence, Tensor]:
    """Append a response canvas to a prompt; returns the sequence and the [L] mask of the
    positions to denoise."""
    c = builder.config
    start = len(builder.kind)
    if layout == "text":
        n = -(-length // c.block_size) * c.block_size
        builder.text([PAD] * n, target=True)
    elif layout == "image":
        builder.text([IMAGE_START], target=True)
        builder._codes(torch.zeros(c.image_positions, c.image_groups, dtype=torch.long), IMAGE,
                       c.image_groups, 0, True)
        builder.text([IMAGE_END], target=True).end_response()
    elif layout == "audio":
        n = -(-length // c.block_size) * c.block_size
        builder.text([AUDIO_START], target=True)
        builder._codes(torch.zeros(n, c.audio_groups, dtype=torch.long), AUDIO, c.audio_groups,
                       0, True)
        builder.text([AUDIO_END], target=True).end_response()
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    seq = builder.build()
    free = torch.zeros(len(seq), dtype=torch.bool)
    free[start:] = True
    if layout != "text":
        free &= seq.kind != TEXT  # markers, <eos> and padding are given
    return seq, free


def make_denoiser(model: OmniModel, batch, free_pos: Tensor, temperature: float, top_k,
                  generator: torch.Generator | None):
    """x_t -> x1 chosen by the heads (sub-codes one after another), as token ids [B, L*G]."""
    b, length, g = batch.ids.shape

    def choose(logits: Tensor) -> Tensor:
        return choose_x1(logits.float(), temperature, top_k, generator)

    @torch.no_grad()
    def denoise(x_t: Tensor) -> Tensor:
        ids = x_t.reshape(b, length, g)
        hidden = model(ids, batch.kind, batch.mpos, batch.attention_mask).last_hidden_state
        hidden = hidden.float()
        x1 = ids.clone()
        text = free_pos & (batch.kind == TEXT)
        x1[..., 0][text] = choose(model.lm_head(hidden[text].to(model.lm_head.weight.dtype)))
        for kind, head, groups in ((IMAGE, model.image_head, model.config.image_groups),
                                   (AUDIO, model.audio_head, model.config.audio_groups)):
            sel = free_pos & (batch.kind == kind)
            if sel.any():
                x1[..., :groups][sel] = head.sample(hidden[sel].to(model.lm_head.weight.dtype),
                                                    choose)
        return x1.reshape(b, length * g)

    return denoise


@torch.no_grad()
def generate(model: OmniModel, prompt: SequenceBuilder, layout: str, length: int = 32,
             steps: int = 16, temperature: float = 0.0, top_k: int | None = None,
             generator: torch.Generator | None = None, paths=None) -> Generated:
    """Denoise a fixed-length canvas after `prompt` and read the response out of it."""
    seq, free = canvas(prompt, layout, length)
    device = next(model.parameters()).device
    batch = collate([seq]).to(device)
    free_pos = free[None].to(device)
    b, n, g = batch.ids.shape
    space = variable_spaces(model.config, batch.kind).reshape(b, n * g)
    fixed = ~(free_pos[..., None].expand(b, n, g).reshape(b, n * g)) | (space < 0)
    denoise = make_denoiser(model, batch, free_pos, temperature, top_k, generator)
    paths = paths if paths is not None else [p.to(device) for p in model.paths()]
    out = euler_sample(denoise, batch.ids.reshape(b, n * g), paths, space=space, fixed=fixed,
                       steps=steps, temperature=temperature, top_k=top_k, generator=generator)
    return read_response(model, seq, out.reshape(n, g), layout)


def read_response(model: OmniModel, seq: Sequence, ids: Tensor, layout: str) -> Generated:
    """Text up to `<eos>`, the image codes, or the audio codes without trailing silence."""
    resp = seq.target.nonzero()[:, 0]
    r_ids, r_kind = ids[resp], seq.kind[resp]
    text_ids = r_ids[r_kind == TEXT][:, 0].tolist()
    if EOS in text_ids:
        text_ids = text_ids[: text_ids.index(EOS)]
    image = audio = None
    if layout == "image":
        image = r_ids[r_kind == IMAGE][:, : model.config.image_groups].cpu()
    if layout == "audio":
        audio = trim_silence(r_ids[r_kind == AUDIO][:, : model.config.audio_groups].cpu(),
                             model.config.audio_silence)
    return Generated(text_ids, image, audio, r_ids.cpu())


def trim_silence(codes: Tensor, silence: tuple[int, ...]) -> Tensor:
    """Drop trailing positions equal to the silence code (generated audio is padded with it)."""
    quiet = (codes == torch.tensor(silence)).all(-1)
    keep = len(codes)
    while keep > 1 and bool(quiet[keep - 1]):
        keep -= 1
    return codes[:keep]
