"""Speed at scale: our DFM engine against HF `generate` on the same Qwen2.5-7B-shaped
backbone (random weights: speed does not depend on them).

    python -m bench.scale [--size 7b|tiny] [--quantization none|4bit] [--new-tokens 256]
        [--block 16] [--steps 4] [--compile] [--json FILE]

Measures tokens/s of a `--new-tokens` reply: HF AR eager (dynamic KV cache), HF AR with a
static cache + torch.compile (`--compile`, GPU), and DFM block decoding with a fixed number of
steps per block (no early stop, so the number is a bound, not luck); the time of one DFM
denoising step and of one 768-position bidirectional forward; peak GPU memory. `--size tiny`
runs in seconds on CPU (the test suite does that); the 7B numbers need a GPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace

import torch

SIZES = {  # Qwen2.5-7B: hidden 3584, 28 layers, 28 heads / 4 KV heads, MLP 18944, vocab 152064
    "7b": dict(hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4,
               intermediate_size=18944, text_vocab_size=152064, max_positions=4096),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                 intermediate_size=128, text_vocab_size=1000, max_positions=1024),
}


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat: int = 1) -> float:
    fn()  # warm-up (compilation, allocator)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def build(size: str, quantization: str | None, device, dtype):
    """(OmniModel, HF Qwen2ForCausalLM) sharing one backbone shape, random weights."""
    from transformers import BitsAndBytesConfig, Qwen2ForCausalLM

    from nextomni.model import OmniConfig, OmniModel
    from nextomni.model.modeling import from_pretrained, save_pretrained

    torch.manual_seed(0)
    config = replace(OmniConfig(), **SIZES[size])
    hf_cfg = config.backbone_config()
    hf_cfg.vocab_size = config.text_vocab_size
    hf_cfg.is_causal = True
    if quantization is None:
        omni = OmniModel(config).to(device=device, dtype=dtype).eval()
        ar = Qwen2ForCausalLM._from_config(hf_cfg, attn_implementation="sdpa").to(device, dtype)
        return omni, ar.eval()
    with tempfile.TemporaryDirectory() as d:
        save_pretrained(OmniModel(config).to(dtype), d)
        omni = from_pretrained(d, device=str(device), quantization=quantization, dtype=dtype)
        Qwen2ForCausalLM._from_config(hf_cfg).to(dtype).save_pretrained(d + "/ar")
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=dtype)
        ar = Qwen2ForCausalLM.from_pretrained(d + "/ar", quantization_config=q,
                                              device_map={"": str(device)})
    return omni, ar.eval()


def hf_tokens_per_s(ar, prompt, new: int, device, static: bool, compile_: bool) -> float:
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    if static:
        kw["cache_implementation"] = "static"
    if compile_:
        ar.forward = torch.compile(ar.forward, mode="reduce-overhead", fullgraph=True)
    with torch.no_grad():
        seconds = timed(lambda: ar.generate(prompt, **kw), device)
    return new / seconds


def dfm_numbers(omni, prompt_len: int, new: int, block: int, steps: int, device) -> dict:
    from nextomni.model.generate import DecodeOptions, generate
    from nextomni.model.sequence import SequenceBuilder

    c = omni.config
    b = SequenceBuilder(c).turn_start([5, 6]).text(list(range(10, 10 + prompt_len)))
    prompt = b.turn_end([7]).turn_start([8, 6]).build()
    blocks = -(-new // block)
    opts = DecodeOptions(steps=steps, confidence=1.0, dynamic=False, fixed_blocks=blocks,
                         block_size=block)
    out = {}

    def reply():
        g = torch.Generator(device).manual_seed(0)
        out["r"] = generate(omni, prompt, opts, g, layout="text")

    seconds = timed(reply, device)
    total_steps = out["r"].stats["steps"]
    ids = torch.randint(0, c.text_vocab_size, (1, 768, c.max_groups), device=device)
    kind = torch.zeros(1, 768, dtype=torch.long, device=device)
    with torch.no_grad():
        forward = timed(lambda: omni(ids, kind, torch.zeros_like(kind)), device, repeat=3)
    return {"dfm_tokens_per_s": blocks * block / seconds, "dfm_step_ms": 1000 * seconds /
            total_steps, "dfm_steps": total_steps, "forward_768_ms": 1000 * forward}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="7b")
    p.add_argument("--quantization", choices=["none", "4bit"], default="none")
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--compile", action="store_true", help="also HF static cache + compile")
    p.add_argument("--json")
    a = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    quant = None if a.quantization == "none" else a.quantization
    omni, ar = build(a.size, quant, device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    prompt = torch.randint(0, omni.config.text_vocab_size, (1, a.prompt_tokens), device=device)
    result = {"size": a.size, "quantization": a.quantization, "device": str(device),
              "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
              "new_tokens": a.new_tokens, "block": a.block, "steps_per_block": a.steps}
    result["hf_eager_tokens_per_s"] = hf_tokens_per_s(ar, prompt, a.new_tokens, device,
                                                      static=False, compile_=False)
    if a.compile:
        result["hf_static_compiled_tokens_per_s"] = hf_tokens_per_s(
            ar, prompt, a.new_tokens, device, static=True, compile_=True)
    result.update(dfm_numbers(omni, a.prompt_tokens, a.new_tokens, a.block, a.steps, device))
    best_ar = result.get("hf_static_compiled_tokens_per_s", result["hf_eager_tokens_per_s"])
    result["dfm_over_best_ar"] = result["dfm_tokens_per_s"] / best_ar
    if device.type == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    print(json.dumps(result, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
