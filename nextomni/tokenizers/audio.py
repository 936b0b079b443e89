"""Audio tokenizer: 16 kHz -> log-mel -> strided encoder -> G sub-codes per position ->
decoder to mel -> waveform (Griffin-Lim).

Alignment with the transcript is a CTC head on the code vectors that predicts the text
tokenizer's tokens (the blank is `<pad>`, which never occurs in a transcript). It keeps the
codes about words rather than voices, and it is the probe that checks speech intelligibility.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nextomni.tokenizers.blocks import ResBlock, norm
from nextomni.tokenizers.pretrained import Pretrained
from nextomni.tokenizers.quantize import MultiCodebookVQ
from nextomni.tokenizers.special import PAD


@dataclass(frozen=True)
class AudioTokenizerConfig:
    sample_rate: int = 16_000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmax: float = 8000.0
    log_floor: float = 1e-5
    mel_mean: float = -6.4  # normalisation of the natural-log mel (OmniWorld speech statistics)
    mel_std: float = 4.2
    channels: int = 192
    strides: tuple[int, ...] = (2, 2)
    groups: int = 4
    codebook_size: int = 256
    code_dim: int = 16
    text_vocab_size: int = 1024

    @property
    def frames_per_position(self) -> int:
        return int(np.prod(self.strides))

    @property
    def positions_per_second(self) -> float:
        return self.sample_rate / self.hop_length / self.frames_per_position


def log_mel(audio: np.ndarray, c: AudioTokenizerConfig) -> np.ndarray:
    """Normalised natural-log mel spectrogram [n_mels, T] of a mono 16 kHz waveform."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected a mono waveform [samples], got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("cannot tokenize empty audio")
    spec = librosa.feature.melspectrogram(y=audio, sr=c.sample_rate, n_fft=c.n_fft,
                                          hop_length=c.hop_length, n_mels=c.n_mels,
                                          fmax=c.fmax, power=2.0)
    return ((np.log(np.maximum(spec, c.log_floor)) - c.mel_mean) / c.mel_std).astype(np.float32)


class AudioTokenizer(Pretrained):
    config_class = AudioTokenizerConfig

    def __init__(self, config: AudioTokenizerConfig = AudioTokenizerConfig()):
        super().__init__()
        self.config = c = config
        C, gd = c.channels, c.groups * c.code_dim
        enc = [nn.Conv1d(c.n_mels, C, 5, padding=2), ResBlock(C, dims=1)]
        for s in c.strides:
            enc += [nn.Conv1d(C, C, 2 * s, stride=s, padding=s // 2), ResBlock(C, dims=1)]
        enc += [norm(C), nn.SiLU(), nn.Conv1d(C, gd, 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv1d(gd, C, 1), ResBlock(C, dims=1)]
        for s in c.strides:
            dec += [nn.ConvTranspose1d(C, C, 2 * s, stride=s, padding=s // 2), ResBlock(C, dims=1)]
        dec += [ResBlock(C, dims=1), norm(C), nn.SiLU(), nn.Conv1d(C, c.n_mels, 5, padding=2)]
        self.decoder = nn.Sequential(*dec)
        self.vq = MultiCodebookVQ(c.groups, c.codebook_size, c.code_dim)
        self.ctc_conv = nn.Sequential(nn.Conv1d(gd, 256, 3, padding=1), nn.SiLU())
        self.ctc_rnn = nn.GRU(256, 128, batch_first=True, bidirectional=True)
        self.ctc_out = nn.Linear(256, c.text_vocab_size)
        self._mel_pinv = None

    @property
    def device(self) -> torch.device:
        return self.vq.codebook.device

    # ------------------------------------------------------------------ signal <-> mel
    def mel(self, audio: np.ndarray) -> np.ndarray:
        """Normalised log-mel [n_mels, T] of a mono 16 kHz waveform."""
        return log_mel(audio, self.config)

    def mel_to_audio(self, mel: np.ndarray) -> np.ndarray:
        """Griffin-Lim waveform of a normalised log-mel [n_mels, T] (fixed phase seed, so the
        same codes always give the same samples)."""
        import librosa

        c = self.config
        power = np.exp(mel * c.mel_std + c.mel_mean)
        # Pseudo-inverse of the mel filters (librosa's NNLS inverse is ~100x slower).
        if self._mel_pinv is None:
            basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels,
                                        fmax=c.fmax)
            self._mel_pinv = np.linalg.pinv(basis)
        magnitude = np.sqrt(np.maximum(self._mel_pinv @ power, 0.0))
        wav = librosa.griffinlim(magnitude, n_iter=32, hop_length=c.hop_length, n_fft=c.n_fft,
                                 random_state=0)
        peak = float(np.abs(wav).max()) if wav.size else 0.0
        return (wav / peak * 0.9 if peak > 0.9 else wav).astype(np.float32)

    # ------------------------------------------------------------------ tensors
    def pad_frames(self, mel: Tensor) -> Tensor:
        """Right-pad [B, n_mels, T] with silence to a multiple of the stride."""
        k = self.config.frames_per_position
        extra = (-mel.shape[-1]) % k
        silence = (np.log(self.config.log_floor) - self.config.mel_mean) / self.config.mel_std
        return F.pad(mel, (0, extra), value=float(silence)) if extra else mel

    def latents(self, mel: Tensor) -> Tensor:
        """[B, n_mels, T] -> [B, P, G, d]."""
        z = self.encoder(self.pad_frames(mel))
        b, _, p = z.shape
        return z.transpose(1, 2).reshape(b, p, self.config.groups, self.config.code_dim)

    def forward(self, mel: Tensor):
        """Training pass: (mel reconstruction, codes [B, P, G], vectors [B, P, G, d], commit)."""
        q, codes, commit = self.vq(self.latents(mel))
        return self.decode_vectors(q), codes, q, commit

    def decode_vectors(self, q: Tensor) -> Tensor:
        b, p, g, d = q.shape
        return self.decoder(q.reshape(b, p, g * d).transpose(1, 2))

    def ctc_logits(self, q: Tensor) -> Tensor:
        """Code vectors [B, P, G, d] -> log-probabilities over text tokens [B, P, V]."""
        h = self.ctc_conv(q.flatten(2).transpose(1, 2)).transpose(1, 2)
        h, _ = self.ctc_rnn(h)
        return self.ctc_out(h).log_softmax(-1)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def encode(self, audio):
        """A waveform -> codes LongTensor [P, G]; a list of waveforms -> a list of those."""
        if isinstance(audio, (list, tuple)):
            return [self.encode(a) for a in audio]
        mel = torch.as_tensor(self.mel(audio), device=self.device)[None]
        z = self.latents(mel)[0]
        return self.vq.quantize(z)

    @torch.no_grad()
    def decode_mel(self, codes: Tensor) -> np.ndarray:
        codes = self._check_codes(codes)
        return self.decode_vectors(self.vq.lookup(codes)[None])[0].cpu().numpy()

    def decode(self, codes):
        """Codes [P, G] -> float32 waveform at 16 kHz; a list -> a list."""
        if isinstance(codes, (list, tuple)):
            return [self.decode(c) for c in codes]
        return self.mel_to_audio(self.decode_mel(codes))

    def code_vectors(self, codes: Tensor) -> Tensor:
        """Codes [..., G] -> unit code vectors [..., G, d]."""
        return self.vq.lookup(torch.as_tensor(codes, device=self.device))

    def codebook_embeddings(self, group: int) -> Tensor:
        return self.vq.codebook[group]

    @torch.no_grad()
    def recognize(self, codes: Tensor) -> list[int]:
        """The alignment probe: greedy CTC over codes [P, G] -> text token ids."""
        codes = self._check_codes(codes)
        best = self.ctc_logits(self.vq.lookup(codes)[None])[0].argmax(-1).tolist()
        out, prev = [], None
        for tok in best:
            if tok != prev and tok != PAD:
                out.append(tok)
            prev = tok
        return out

    def _check_codes(self, codes) -> Tensor:
        codes = torch.as_tensor(codes, device=self.device)
        if codes.dim() != 2 or codes.shape[1] != self.config.groups:
            raise ValueError(f"expected codes [P, {self.config.groups}], got {tuple(codes.shape)}")
        if codes.shape[0] == 0:
            raise ValueError("no audio codes to decode")
        return codes
