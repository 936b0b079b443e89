"""Modality tokenizers: text (byte-level BPE), image and audio (multi-codebook VQ), video."""

from nextomni.tokenizers.audio import AudioTokenizer, AudioTokenizerConfig
from nextomni.tokenizers.image import ImageTokenizer, ImageTokenizerConfig
from nextomni.tokenizers.text import TextTokenizer
from nextomni.tokenizers.video import VideoTokens, encode_video

__all__ = ["TextTokenizer", "ImageTokenizer", "ImageTokenizerConfig", "AudioTokenizer",
           "AudioTokenizerConfig", "VideoTokens", "encode_video"]
