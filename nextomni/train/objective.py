"""What one training step optimises, and the model it starts from.

Objective per step: DFM cross-entropy on the response variables
  + w_ret * contrastive loss between unified representations of paired items
  + w_img * image reconstruction + w_aud * audio reconstruction (tokenizer decoders keep
    training; their encoders and codebooks stay frozen so the codes do not move).
The autoregressive baseline (`causal`) replaces the DFM term by next-token cross-entropy
over the whole reply and keeps the retrieval term.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nextomni.model import OmniConfig, OmniModel
from nextomni.model.formatting import Tokenizers
from nextomni.model.modeling import from_pretrained
from nextomni.model.objective import ar_objective, dfm_objective
from nextomni.model.sequence import Batch
from nextomni.tokenizers import AudioTokenizer, ImageTokenizer
from nextomni.train.config import OmniTrainConfig
from nextomni.train.inputs import Inputs

log = logging.getLogger("nextomni.train.objective")


def silence_code(audio_tok: AudioTokenizer) -> tuple[int, ...]:
    codes = audio_tok.encode(np.zeros(16_000, np.float32))
    return tuple(int(c) for c in torch.mode(codes, dim=0).values)


def build_model(cfg: OmniTrainConfig, tok: Tokenizers) -> OmniModel:
    config = OmniConfig.for_tokenizers(
        tok.text, tok.image, tok.audio, silence=silence_code(tok.audio),
        hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_kv_heads, intermediate_size=cfg.intermediate_size,
        block_size=cfg.block_size, causal=cfg.causal, text_path=cfg.text_path,
        opening_block=1 if cfg.causal else cfg.opening_block)
    model = OmniModel(config)
    with torch.no_grad():  # frozen metric spaces / projector inputs from the tokenizers
        model.image_codebook.copy_(tok.image.vq.codebook)
        model.audio_codebook.copy_(tok.audio.vq.codebook)
        emb = tok.image.caption_encoder.emb.weight  # text metric: the caption embedding
        model.text_metric.copy_(emb[:, : config.text_metric_dim])
    return model


class Objective(nn.Module):
    """Every trainable part behind one forward, so data-parallel wrappers see all of it:
    the omni model, and the tokenizers' decoders (their encoders and codebooks are frozen,
    so the codes the model learns on do not move)."""

    def __init__(self, model: OmniModel, image_tok: ImageTokenizer, audio_tok: AudioTokenizer,
                 cfg: OmniTrainConfig):
        super().__init__()
        self.model, self.image_tok, self.audio_tok, self.cfg = model, image_tok, audio_tok, cfg
        for tok in (image_tok, audio_tok):
            tok.requires_grad_(False)
            if not cfg.causal:  # the baseline shares the DFM model's tokenizers unchanged
                tok.decoder.requires_grad_(True)
        self.paths = model.paths()

    def placed(self, device) -> "Objective":
        """Call once the weights are on `device`: the metric paths follow them, and each RNN
        weight gets its own storage (see `unshare_rnn_weights`)."""
        unshare_rnn_weights(self)
        self.paths = [p.to(device) for p in self.paths]
        return self

    def forward(self, x: Inputs) -> dict[str, torch.Tensor]:
        if self.cfg.causal:
            dfm = ar_objective(self.model, x.dfm, per_example=self.cfg.per_example_loss)
            img = aud = torch.zeros((), device=dfm.device)
        else:
            dfm = dfm_objective(self.model, x.dfm, self.paths,
                                per_example=self.cfg.per_example_loss,
                                code_time_power=self.cfg.code_time_power)
            img = self.image_reconstruction(x.images)
            aud = self.audio_reconstruction(x.mels, x.frames)
        ret = self.retrieval(x.pairs)
        c = self.cfg
        loss = dfm + c.w_retrieval * ret + c.w_image_rec * img + c.w_audio_rec * aud
        return {"loss": loss, "dfm": dfm, "retrieval": ret, "image_rec": img, "audio_rec": aud}

    def retrieval(self, pairs: Batch) -> torch.Tensor:
        """InfoNCE between the unified representations of (item, description) pairs."""
        h = self.model(pairs.ids, pairs.kind, pairs.mpos, pairs.attention_mask,
                       segment=pairs.segment).last_hidden_state
        emb = self.model.unified_embedding(h.float(), pairs.attention_mask.sum(1) - 1)
        emb = emb.reshape(-1, 2, emb.shape[-1])
        logits = emb[:, 0] @ emb[:, 1].T / 0.05
        target = torch.arange(len(emb), device=emb.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    def image_reconstruction(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            q = self.image_tok.vq.snap(self.image_tok.latents(x))
        recon = self.image_tok.decode_vectors(q).float()
        return F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)

    def audio_reconstruction(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            q = self.audio_tok.vq.snap(self.audio_tok.latents(mel))
        recon = self.audio_tok.decode_vectors(q)[..., : mel.shape[-1]].float()
        mask = (torch.arange(mel.shape[-1], device=mel.device)[None] < frames[:, None])[:, None]
        return ((recon - mel) ** 2 * mask).sum() / (mask.sum() * mel.shape[1])


def build_objective(cfg: OmniTrainConfig, tok: Tokenizers):
    """A model (fresh, or `cfg.init_from`'s) behind its training objective, what of it
    trains, and the optimizer."""
    model = build_model(cfg, tok) if cfg.init_from is None else warm_start(cfg, tok)
    objective = Objective(model, tok.image, tok.audio, cfg)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    return objective, trainable, opt


def warm_start(cfg: OmniTrainConfig, tok: Tokenizers | None = None) -> OmniModel:
    """The checkpoint at `cfg.init_from`, in fp32, to train on with this run's objective.

    With `tok` (the run's tokenizers, e.g. `--tokenizers` naming a new image tokenizer), the
    model's frozen copies of the image and audio codebooks are taken from them, so its
    projectors and metric paths read the codes the run will feed it; the projectors and code
    heads then relearn from their old weights. The text metric stays the checkpoint's: it
    defines the text path the model was trained on."""
    model = from_pretrained(cfg.init_from, dtype=torch.float32)
    if model.config.causal != cfg.causal:
        kind = "causal (autoregressive)" if model.config.causal else "DFM"
        raise ValueError(f"{cfg.init_from} holds a {kind} model; "
                         f"{'add' if model.config.causal else 'drop'} --causal "
                         "or start from a matching checkpoint")
    if not cfg.causal and model.config.opening_block != cfg.opening_block:
        log.info("replies open with a block of %d positions (%s was trained with %d)",
                 cfg.opening_block, cfg.init_from, model.config.opening_block)
        model.config = dataclasses.replace(model.config, opening_block=cfg.opening_block)
    if tok is not None:
        with torch.no_grad():
            for name, codebook in (("image", tok.image.vq.codebook),
                                   ("audio", tok.audio.vq.codebook)):
                mine = getattr(model, f"{name}_codebook")
                if mine.shape != codebook.shape:
                    raise ValueError(f"the {name} tokenizer's codebook is {tuple(codebook.shape)}"
                                     f" but {cfg.init_from} was trained on {tuple(mine.shape)}")
                if not torch.allclose(mine, codebook.float(), atol=1e-2):
                    log.info("%s codes differ from %s's: taking the tokenizer's", name,
                             cfg.init_from)
                mine.copy_(codebook)
    return model


def unshare_rnn_weights(module: nn.Module) -> None:
    """Each RNN weight in its own storage. Moved to a GPU, an RNN (the audio tokenizer's
    recognition probe, frozen here) packs its weights into one cuDNN buffer; the saved state
    then keeps one of them and a resume refuses to load. Training never runs that RNN, so
    the packing buys nothing."""
    for m in module.modules():
        if isinstance(m, nn.RNNBase):
            for p in m.parameters(recurse=False):
                p.data = p.data.clone()
