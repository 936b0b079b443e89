"""Speed at scale: our DFM engine against HF `generate` on the same Qwen2.5-7B-shaped
backbone (random weights: speed does not depend on them).

    python -m bench.scale [--size 7b|tiny] [--quantization none|4bit] [--new-tokens 256]
        [--blocks 16,32] [--steps 4,8] [--graphs off,on] [--compile] [--json FILE]

Measures tokens/s of a `--new-tokens` reply: HF AR eager (dynamic KV cache), HF AR with a
static cache, which transformers compiles (torch.compile + CUDA graphs) on a GPU
(`--compile`), and DFM block decoding with a fixed number of steps per block for each block
size, eager (dynamic cache) and with the static cache whose text steps replay as CUDA graphs
(`--graphs`: each step of a text block, the sampler's choice and jump included, is one
replay, and a block's commit rides on the next block's first step; no early stop, so the
number is a bound, not luck), for each number of steps per block (`@block16-steps4`); the
time of one DFM denoising step and of one 768-position bidirectional forward; peak GPU memory
of each. `--size tiny` runs in seconds on CPU (the test suite does that); the 7B numbers need
a GPU. The JSON is rewritten after every measurement, so a run cut short keeps what it has.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
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


@contextlib.contextmanager
def made_on(device, dtype):
    """Create modules directly on `device` in `dtype`: a 7B model initialised on the CPU in
    fp32 takes minutes and 30 GB before it is cast."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _config(size: str):
    from nextomni.model import OmniConfig

    return replace(OmniConfig(), **SIZES[size])


def build_dfm(size: str, quantization: str | None, device, dtype):
    """Our OmniModel at `size`, random weights; quantized loading goes through files, as a
    user's checkpoint would."""
    from nextomni.model import OmniModel
    from nextomni.model.modeling import from_pretrained, save_pretrained

    torch.manual_seed(0)
    if quantization is None:
        with made_on(device, dtype):
            return OmniModel(_config(size)).eval()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        with made_on(device, dtype):
            model = OmniModel(_config(size))
        save_pretrained(model, d)
        del model
        return from_pretrained(d, device=str(device), quantization=quantization,
                               dtype=dtype).eval()


def build_ar(size: str, quantization: str | None, device, dtype):
    """HF Qwen2ForCausalLM of the same backbone shape, random weights (nf4 through files)."""
    from transformers import BitsAndBytesConfig, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = _config(size)
    hf_cfg = config.backbone_config()
    hf_cfg.vocab_size = config.text_vocab_size
    hf_cfg.is_causal = True
    if quantization is None:
        with made_on(device, dtype):
            return Qwen2ForCausalLM._from_config(hf_cfg, attn_implementation="sdpa").eval()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        with made_on(device, dtype):
            model = Qwen2ForCausalLM._from_config(hf_cfg)
        model.save_pretrained(d)
        del model
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=dtype)
        return Qwen2ForCausalLM.from_pretrained(d, quantization_config=q,
                                                device_map={"": str(device)}).eval()


def release(device) -> None:
    """Give the memory of a deleted model back, so the next one's peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def resident_gb(device) -> float | None:
    """GPU memory held now (the model's weights after loading), then the peak reset; None on
    CPU."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated() / 2**30


def peak_gb(device) -> float | None:
    """Peak GPU memory since the last call (then reset); None on CPU."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return peak


def hf_tokens_per_s(ar, prompt, new: int, device, static: bool) -> float:
    """HF `generate`, greedy, exactly `new` tokens. With `static`, a static cache, with which
    transformers compiles the forward itself (torch.compile, CUDA graphs) on a GPU."""
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    if static:
        kw["cache_implementation"] = "static"
    with torch.no_grad():
        seconds = timed(lambda: ar.generate(prompt, **kw), device)
    return new / seconds


def dfm_numbers(omni, prompt_len: int, new: int, block: int, steps: int, device,
                graphs: bool) -> dict:
    from nextomni.model.generate import DecodeOptions, generate
    from nextomni.model.sequence import SequenceBuilder

    c = omni.config
    b = SequenceBuilder(c).turn_start([5, 6]).text(list(range(10, 10 + prompt_len)))
    prompt = b.turn_end([7]).turn_start([8, 6]).build()
    blocks = -(-new // block)
    opts = DecodeOptions(steps=steps, confidence=1.0, dynamic=False, fixed_blocks=blocks,
                         block_size=block, graphs=graphs)
    out = {}

    def reply():
        # each reply computes its prompt; with graphs it recycles the buffers and captured
        # steps of the reply before (the warm-up), as a chat's next turn does
        g = torch.Generator(device).manual_seed(0)
        reuse = out["r"].state.recycled() if "r" in out and graphs else None
        out["r"] = generate(omni, prompt, opts, g, layout="text", reuse=reuse)

    seconds = timed(reply, device)
    stats = out["r"].stats
    return {"dfm_tokens_per_s": blocks * block / seconds, "dfm_step_ms": 1000 * seconds /
            stats.steps, "dfm_steps": stats.steps, "dfm_forwards": stats.forward_passes,
            "dfm_prompt_reused": stats.prompt_reused}


def forward_ms(omni, length: int, device) -> float:
    """One bidirectional forward over `length` positions (a whole canvas at once)."""
    c = omni.config
    ids = torch.randint(0, c.text_vocab_size, (1, length, c.max_groups), device=device)
    kind = torch.zeros(1, length, dtype=torch.long, device=device)
    with torch.no_grad():
        return 1000 * timed(lambda: omni(ids, kind, torch.zeros_like(kind)), device, repeat=3)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="7b")
    p.add_argument("--quantization", choices=["none", "4bit"], default="none")
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--blocks", default="16", help="DFM block sizes, comma separated")
    p.add_argument("--steps", default="4", help="DFM steps per block, comma separated")
    p.add_argument("--compile", action="store_true",
                   help="also HF with a static cache (compiled by transformers on a GPU)")
    p.add_argument("--graphs", default="off,on",
                   help="DFM with the static cache / CUDA-graphed text steps: off, on or both")
    p.add_argument("--json")
    a = p.parse_args(argv)
    blocks = [int(b) for b in a.blocks.split(",") if b.strip()]
    step_counts = [int(k) for k in a.steps.split(",") if k.strip()]
    shapes = [(b, k) for b in blocks for k in step_counts]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    quant = None if a.quantization == "none" else a.quantization
    result = {"size": a.size, "quantization": a.quantization, "device": str(device),
              "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
              "new_tokens": a.new_tokens, "steps_per_block": step_counts}

    def record(key, value):
        result[key] = round(value, 3) if isinstance(value, float) else value
        print(json.dumps({key: result[key]}), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)

    # one model on the device at a time: each peak is that decoder's own
    omni = build_dfm(a.size, quant, device, dtype)
    record("dfm_weights_gb", resident_gb(device))
    modes = [m.strip() == "on" for m in a.graphs.split(",") if m.strip()]
    for graphs in modes:
        name = "dfm_graphs" if graphs else "dfm"
        for block, steps in shapes:
            at = f"@block{block}-steps{steps}"
            for k, v in dfm_numbers(omni, a.prompt_tokens, a.new_tokens, block, steps,
                                    device, graphs).items():
                record(f"{k.replace('dfm', name, 1)}{at}", v)
            record(f"{name}_peak_gb{at}", peak_gb(device))
    record("forward_768_ms", forward_ms(omni, 768, device))
    vocab = omni.config.text_vocab_size
    del omni
    release(device)

    ar = build_ar(a.size, quant, device, dtype)
    record("ar_weights_gb", resident_gb(device))
    prompt = torch.randint(0, vocab, (1, a.prompt_tokens), device=device)
    record("hf_eager_tokens_per_s", hf_tokens_per_s(ar, prompt, a.new_tokens, device,
                                                    static=False))
    record("hf_eager_peak_gb", peak_gb(device))
    best_ar = result["hf_eager_tokens_per_s"]
    if a.compile:
        try:
            record("hf_static_compiled_tokens_per_s",
                   hf_tokens_per_s(ar, prompt, a.new_tokens, device, static=True))
            best_ar = max(best_ar, result["hf_static_compiled_tokens_per_s"])
            record("hf_static_compiled_peak_gb", peak_gb(device))
        except Exception as e:  # noqa: BLE001 -- a bench records why a mode did not run
            record("hf_static_compiled_error", f"{type(e).__name__}: {e}"[:300])
    record("best_ar_tokens_per_s", best_ar)
    for graphs in modes:
        name = "dfm_graphs" if graphs else "dfm"
        for block, steps in shapes:
            at = f"@block{block}-steps{steps}"
            record(f"{name}_over_best_ar{at}", result[f"{name}_tokens_per_s{at}"] / best_ar)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
