"""Save / load a tokenizer as a folder: config.json + model.safetensors (fp16 on disk)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class Pretrained(nn.Module):
    """Mixin for modules built from one dataclass config (`config_class`)."""

    config_class: type

    def save_pretrained(self, directory) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(dataclasses.asdict(self.config), indent=2))
        state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
                 for k, v in self.state_dict().items()}
        save_file({k: v.contiguous() for k, v in state.items()}, str(d / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory, device="cpu"):
        d = Path(directory)
        if not (d / "config.json").exists():
            raise FileNotFoundError(f"no config.json in {d}")
        raw = json.loads((d / "config.json").read_text())
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        cfg = cls.config_class(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in raw.items() if k in fields})
        model = cls(cfg)
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in load_file(str(d / "model.safetensors")).items()}
        model.load_state_dict(state)
        return model.to(device).eval()
