"""Special text tokens: the one place tokenizer, model and sampler take their ids from.

They are the first ids of the text vocabulary, in this order, so their ids are constants.
"""

from __future__ import annotations

SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",              # fills a response after <eos> up to a multiple of the block size
    "<eos>",              # end of a response; its hidden state is the unified representation
    "<|im_start|>",       # chat turn start, followed by the role
    "<|im_end|>",
    "<|image_start|>", "<|image_end|>",
    "<|audio_start|>", "<|audio_end|>",
    "<|video_start|>", "<|video_end|>",
    "<|null|>",           # stands in for a dropped condition (classifier-free guidance)
)

PAD, EOS, IM_START, IM_END, IMAGE_START, IMAGE_END, AUDIO_START, AUDIO_END, VIDEO_START, \
    VIDEO_END, NULL = range(len(SPECIAL_TOKENS))
