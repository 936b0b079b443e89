"""Image tokenizer: 64x64 RGB -> 8x8 positions x G sub-codes (multi-codebook VQ) -> RGB.

One encoder serves understanding, generation and retrieval (the unified representation):
it is warmed up with reconstruction, VQ commitment and two CLIP-style contrastive losses:
the pooled code vectors of the whole image against an embedding of its caption, and the code
vectors pooled over each region (the 3x3 grid) against an embedding of that region's phrase
("large red circle", "empty"). The regional term is what makes the codes carry shape identity
early; with the global term alone the decoder long draws every shape as a blob.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from nextomni.tokenizers.blocks import ChannelNorm, ResBlock, norm
from nextomni.tokenizers.pretrained import Pretrained
from nextomni.tokenizers.quantize import MultiCodebookVQ


@dataclass(frozen=True)
class ImageTokenizerConfig:
    image_size: int = 64
    patch: int = 8       # pixels per grid position along each axis (64 -> 8x8)
    width: int = 160     # channels at the grid resolution
    enc_blocks: int = 2
    dec_blocks: int = 4
    pixel_channels: int = 16
    groups: int = 4
    codebook_size: int = 256
    code_dim: int = 16
    text_vocab_size: int = 1024  # for the caption embedding of the alignment loss
    align_dim: int = 64
    # codes that depend on their own 8x8 patch only (per-patch encoder, no position input):
    # the same patch gets the same code anywhere, and a shape drawn in one cell leaves the
    # codes of every other cell as they were. The default encoder (3x3 convolutions with
    # GroupNorm, a position embedding) makes every code depend on the whole picture; see
    # `image_code_spill` in nextomni.eval.tokenizers.
    local_encoder: bool = False

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    @property
    def positions(self) -> int:
        return self.grid * self.grid


class CaptionEncoder(nn.Module):
    """Mean of token embeddings -> MLP: the text side of the alignment loss."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.emb = nn.EmbeddingBag(vocab, 128, mode="mean", padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, dim))

    def forward(self, tokens: Tensor) -> Tensor:
        return F.normalize(self.mlp(self.emb(tokens)), dim=-1)


class ImageTokenizer(Pretrained):
    config_class = ImageTokenizerConfig

    def __init__(self, config: ImageTokenizerConfig = ImageTokenizerConfig()):
        super().__init__()
        self.config = c = config
        self.encoder, self.decoder = _patch_coders(c)
        self.vq = MultiCodebookVQ(c.groups, c.codebook_size, c.code_dim)
        self.image_head = nn.Sequential(nn.Linear(c.groups * c.code_dim, 128), nn.SiLU(),
                                        nn.Linear(128, c.align_dim))
        self.region_head = nn.Sequential(nn.Linear(c.groups * c.code_dim, 128), nn.SiLU(),
                                         nn.Linear(128, c.align_dim))
        self.caption_encoder = CaptionEncoder(c.text_vocab_size, c.align_dim)
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    # ------------------------------------------------------------------ tensors in/out
    def to_tensor(self, images) -> Tensor:
        """uint8 [B, H, W, 3] array/tensor or a list of PIL images -> float [B, 3, S, S] in
        [-1, 1]; other sizes are letterboxed to a square and resized."""
        s = self.config.image_size
        if isinstance(images, Image.Image):
            images = [images]
        if isinstance(images, (list, tuple)):
            images = np.stack([_square(np.asarray(im.convert("RGB") if isinstance(im, Image.Image)
                                                  else im), s) for im in images])
        arr = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
        if arr.dim() == 3:
            arr = arr[None]
        if arr.dim() != 4 or arr.shape[-1] != 3:
            raise ValueError(f"expected images [B, H, W, 3], got {tuple(arr.shape)}")
        if arr.dtype != torch.uint8:
            raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
        if arr.shape[1:3] != (s, s):
            arr = torch.as_tensor(np.stack([_square(a, s) for a in arr.numpy()]))
        x = arr.to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1
        return x

    @property
    def device(self) -> torch.device:
        return self.vq.codebook.device

    def latents(self, x: Tensor, pool: int = 1) -> Tensor:
        """Encoder output [B, P, G, d] (P = (grid / pool)^2) before quantization."""
        z = self.encoder(x)
        if pool > 1:
            z = F.avg_pool2d(z, pool)
        b, _, h, w = z.shape
        return z.permute(0, 2, 3, 1).reshape(b, h * w, self.config.groups, self.config.code_dim)

    def forward(self, x: Tensor):
        """Training pass: (reconstruction [B, 3, S, S], codes [B, P, G], vectors, commit)."""
        q, codes, commit = self.vq(self.latents(x))
        return self.decode_vectors(q), codes, q, commit

    def decode_vectors(self, q: Tensor) -> Tensor:
        """Code vectors [B, P, G, d] -> pixels [B, 3, S, S] in [-1, 1]."""
        b, p, g, d = q.shape
        side = int(round(p ** 0.5))
        return self.decoder(q.reshape(b, side, side, g * d).permute(0, 3, 1, 2))

    def align_embedding(self, q: Tensor) -> Tensor:
        """Pooled code vectors [B, P, G, d] -> unit vector [B, align_dim]."""
        return F.normalize(self.image_head(q.flatten(2).mean(1)), dim=-1)

    def region_embeddings(self, q: Tensor, regions: int = 3) -> Tensor:
        """Code vectors pooled over a regions x regions grid -> unit vectors [B, R*R, align]."""
        b, p, g, d = q.shape
        side = int(round(p ** 0.5))
        grid = q.reshape(b, side, side, g * d).permute(0, 3, 1, 2)
        pooled = F.adaptive_avg_pool2d(grid, regions).flatten(2).transpose(1, 2)
        return F.normalize(self.region_head(pooled), dim=-1)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def encode(self, images, pool: int = 1) -> Tensor:
        """Images -> codes LongTensor [B, P, G]; `pool` > 1 averages the latents over
        pool x pool windows first (video frames use fewer positions)."""
        return self.vq.quantize(self.latents(self.to_tensor(images), pool))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> np.ndarray:
        """Codes [B, P, G] -> uint8 images [B, S, S, 3]."""
        codes = torch.as_tensor(codes, device=self.device)
        if codes.dim() != 3 or codes.shape[1:] != (self.config.positions, self.config.groups):
            raise ValueError(f"expected codes [B, {self.config.positions}, "
                             f"{self.config.groups}], got {tuple(codes.shape)}")
        return to_uint8(self.decode_vectors(self.vq.lookup(codes)))

    def code_vectors(self, codes: Tensor) -> Tensor:
        """Codes [..., G] -> unit code vectors [..., G, d] (projector input, DFM metric)."""
        return self.vq.lookup(torch.as_tensor(codes, device=self.device))

    def codebook_embeddings(self, group: int) -> Tensor:
        """Codebook `group` as [K, d]: the metric space of that sub-code's DFM path."""
        return self.vq.codebook[group]


class AddPosition(nn.Module):
    """A learned embedding per grid position: convolutions alone barely know where they are,
    and where a patch lies decides which part of a shape it shows."""

    def __init__(self, channels: int, grid: int):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, channels, grid, grid))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pos


def _patch_coders(c: ImageTokenizerConfig):
    """All the work at the grid resolution: pixels <-> patches by (un)shuffling."""
    p, w, local = c.patch, c.width, c.local_encoder
    enc = [nn.PixelUnshuffle(p), nn.Conv2d(3 * p * p, w, 1)]
    enc += [] if local else [AddPosition(w, c.grid)]
    enc += [ResBlock(w, local=local) for _ in range(c.enc_blocks)]
    enc += [ChannelNorm(w) if local else norm(w), nn.SiLU(), nn.Conv2d(w, c.groups * c.code_dim, 1)]
    dec = [nn.Conv2d(c.groups * c.code_dim, w, 1), AddPosition(w, c.grid)]
    dec += [ResBlock(w) for _ in range(c.dec_blocks)]
    # patches of a few feature channels, then two full-resolution convs that draw the edges
    # across patch borders (a purely per-patch output leaves shapes blocky)
    f = c.pixel_channels
    dec += [norm(w), nn.SiLU(), nn.Conv2d(w, f * p * p, 1), nn.PixelShuffle(p),
            nn.SiLU(), nn.Conv2d(f, f, 3, padding=1), nn.SiLU(), nn.Conv2d(f, 3, 3, padding=1)]
    return nn.Sequential(*enc), nn.Sequential(*dec)


def to_uint8(x: Tensor) -> np.ndarray:
    """[-1, 1] float [B, 3, H, W] -> uint8 [B, H, W, 3]."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _square(arr: np.ndarray, size: int) -> np.ndarray:
    """Letterbox to a square (pad the short side with the picture's border colour), then
    resize to size x size. Padding rather than cropping keeps the whole scene of a
    non-square upload: a centre crop of a 4:3 picture cuts off its left and right cells.
    Training pictures are square, so they pass through unchanged."""
    arr = letterbox(np.asarray(arr))
    if arr.shape[0] == size:
        return np.ascontiguousarray(arr)
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))


def letterbox(arr: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> [S, S, 3], S = max(H, W): the picture centred on a canvas of its
    border colour (the per-channel median of its outermost pixels)."""
    h, w = arr.shape[:2]
    if h == w:
        return arr
    ring = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    canvas = np.empty((max(h, w), max(h, w), 3), np.uint8)
    canvas[:] = np.median(ring, axis=0).round().astype(np.uint8)
    top, left = (canvas.shape[0] - h) // 2, (canvas.shape[1] - w) // 2
    canvas[top:top + h, left:left + w] = arr
    return canvas
