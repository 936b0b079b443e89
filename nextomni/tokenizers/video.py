"""Video = a few frames through the image tokenizer, pooled to fewer positions per frame, plus
the sound track through the audio tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

VIDEO_FRAMES = 4  # frames kept per clip
FRAME_POOL = 2    # 8x8 -> 4x4 positions per frame


@dataclass
class VideoTokens:
    frames: torch.Tensor  # [F, P', G] image codes, P' = (grid / pool)^2
    audio: torch.Tensor | None  # [P_audio, G_audio] or None for a silent clip


def sample_frames(frames: np.ndarray, n: int = VIDEO_FRAMES) -> np.ndarray:
    """n frames evenly spread over [T, H, W, 3], first and last included."""
    if len(frames) == 0:
        raise ValueError("a video needs at least one frame")
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    return np.asarray(frames)[idx]


def encode_video(frames: np.ndarray, audio: np.ndarray | None, image_tokenizer,
                 audio_tokenizer=None, n_frames: int = VIDEO_FRAMES,
                 pool: int = FRAME_POOL) -> VideoTokens:
    """Tokenize a clip: frames uint8 [T, H, W, 3] of any size (the image tokenizer
    letterboxes non-square frames, so a wide clip keeps its sides) and an optional 16 kHz
    sound track."""
    codes = image_tokenizer.encode(sample_frames(frames, n_frames), pool=pool)
    sound = None
    if audio is not None and audio_tokenizer is not None and len(audio):
        sound = audio_tokenizer.encode(audio)
    return VideoTokens(codes, sound)
