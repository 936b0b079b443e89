"""A preallocated key/value cache, and CUDA-graphed denoising steps for text blocks.

At 7B scale one denoising step of a 16-position block reads every weight once (~5 ms on an
H100), yet eager PyTorch spends several times that launching the step's ~1000 kernels from
Python. A CUDA graph records those kernels once and replays them with one launch. Graphs
need fixed shapes and fixed memory, hence `StaticCache`: the keys/values of `capacity`
positions live in buffers allocated up front, each forward writes its positions in place
(at slots held in a device tensor), and attention always spans the whole capacity, masked
beyond the positions in use. The cache keeps `DynamicCache`'s contract (a forward appends its
positions; `crop(-n)` drops the last n), so the block decoder drives either the same way.

`TextStep` is one block size's step: the text embedding, the backbone over the block against
the cache, the final hidden states. On CUDA it is captured into a graph; elsewhere it runs
the same code eagerly (which is how the tests check it against the dynamic cache).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nextomni.model.config import TEXT


class StaticCache:
    """Keys/values of up to `capacity` positions for every backbone layer."""

    def __init__(self, backbone_config, capacity: int, device, dtype: torch.dtype):
        c = backbone_config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        shape = (1, c.num_key_value_heads, capacity, head_dim)
        # zeros, not empty: masked slots still enter the attention product (0 * NaN = NaN)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype)
                     for _ in range(c.num_hidden_layers)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.capacity, self.length = capacity, 0
        self.device = torch.device(device)
        self._arange = torch.arange(capacity, device=device)
        self._slots: dict[int, Tensor] = {}   # per forward length: where it writes
        self._masks: dict[int, Tensor] = {}   # per forward length: [1, 1, n, capacity]

    # ------------------------------------------------------------------ bookkeeping
    def begin(self, n: int) -> None:
        """Before a forward over n positions: they take slots length .. length + n - 1 (the
        slot tensors are updated in place, so a captured graph sees the new values)."""
        if self.length + n > self.capacity:
            raise ValueError(f"static cache full: {self.length} + {n} positions > capacity "
                             f"{self.capacity}")
        if n not in self._slots:
            self._slots[n] = torch.empty(n, dtype=torch.long, device=self.device)
        self._slots[n].copy_(self._arange[self.length: self.length + n])
        self.length += n

    def slots(self, n: int) -> Tensor:
        return self._slots[n]

    def visible(self, n: int) -> Tensor:
        """[1, 1, n, capacity]: every query sees every position in use (a text block sees
        the prompt, the earlier blocks and itself), nothing beyond."""
        if n not in self._masks:
            self._masks[n] = torch.empty(1, 1, n, self.capacity, dtype=torch.bool,
                                         device=self.device)
        self._masks[n].copy_((self._arange < self.length).expand(1, 1, n, self.capacity))
        return self._masks[n]

    def pad_mask(self, mask: Tensor) -> Tensor:
        """A [B, 1, Q, K] mask over the positions in use, widened to the capacity."""
        out = torch.zeros(*mask.shape[:3], self.capacity, dtype=mask.dtype, device=mask.device)
        out[..., : mask.shape[-1]] = mask
        return out

    # ------------------------------------------------------------------ Cache protocol
    def update(self, key: Tensor, value: Tensor, layer_idx: int, *args, **kwargs):
        slots = self._slots[key.shape[2]]
        self.keys[layer_idx].index_copy_(2, slots, key.to(self.keys[layer_idx].dtype))
        self.values[layer_idx].index_copy_(2, slots, value.to(self.values[layer_idx].dtype))
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def crop(self, max_length: int) -> None:
        """DynamicCache's: a negative value drops that many positions from the end."""
        self.length = self.length + max_length if max_length < 0 else min(self.length,
                                                                          max_length)


class TextStep:
    """Hidden states of an all-text block of n positions against a `StaticCache`, appending
    the block to the cache (crop it to undo). Captured as a CUDA graph on a CUDA device."""

    def __init__(self, model, cache: StaticCache, n: int):
        self.model, self.cache, self.n = model, cache, n
        device = cache.device
        self.ids = torch.zeros(1, n, dtype=torch.long, device=device)
        self.kind = torch.full((1, n), TEXT, dtype=torch.long, device=device)
        self.graph = None
        self.out: Tensor | None = None
        if device.type == "cuda":
            self._capture()

    def _run(self) -> Tensor:
        m, cache, n = self.model, self.cache, self.n
        emb = m.backbone.embed_tokens(self.ids) + m.kind_emb(self.kind)
        out = m.backbone(inputs_embeds=emb, attention_mask={"full_attention": cache._masks[n]},
                         position_ids=cache.slots(n)[None], past_key_values=cache,
                         use_cache=True, is_causal=False)
        return out.last_hidden_state[0]

    def _capture(self) -> None:
        cache, n = self.cache, self.n
        cache.begin(n)  # warm-up and capture write into the slots the next step overwrites
        cache.visible(n)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._run()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self._run()
        cache.crop(-n)

    @torch.no_grad()
    def __call__(self, ids: Tensor) -> Tensor:
        """ids [n] (text tokens) -> hidden [n, H]; the block stays in the cache."""
        self.cache.begin(self.n)
        self.cache.visible(self.n)
        self.ids.copy_(ids.reshape(1, self.n))
        if self.graph is None:
            return self._run()
        self.graph.replay()
        return self.out
