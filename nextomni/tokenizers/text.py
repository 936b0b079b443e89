"""Text tokenizer: byte-level BPE (HF tokenizers) trained on OmniWorld text.

Byte-level, so anything a person types can be encoded; trained on OmniWorld, so every word the
world uses is one or two tokens. Special tokens take ids 0..len(SPECIAL_TOKENS)-1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from nextomni.tokenizers.special import EOS, PAD, SPECIAL_TOKENS

FILE = "tokenizer.json"


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer):
        for i, tok in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(tok) != i:
                raise ValueError(f"special token {tok!r} must have id {i}")
        self.tok = tokenizer

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1024) -> "TextTokenizer":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def from_pretrained(cls, directory) -> "TextTokenizer":
        path = Path(directory) / FILE
        if not path.exists():
            raise FileNotFoundError(f"no {FILE} in {directory}")
        return cls(Tokenizer.from_file(str(path)))

    def save_pretrained(self, directory) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.tok.save(str(Path(directory) / FILE))

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    pad_id, eos_id = PAD, EOS

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special).strip()

    def token_id(self, token: str) -> int:
        i = self.tok.token_to_id(token)
        if i is None:
            raise KeyError(f"{token!r} is not in the vocabulary")
        return i
