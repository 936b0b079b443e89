"""The omni training run's settings, and its command line generated from them.

Every field of `OmniTrainConfig` is a flag (`hidden_size` -> `--hidden-size`), typed from its
annotation and documented by its `help`, so a new setting cannot be forgotten on the command
line and the two can never disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_type_hints


def opt(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class OmniTrainConfig:
    out: Path = opt(Path("checkpoints/nano"), "where the finished checkpoint is written")
    work: Path = opt(Path("runs/omni"), "training state (resumable) and the loss log")
    seed: int = opt(0, "the run's seed (weights and data order)")
    # backbone shape (nano)
    hidden_size: int = opt(256, "backbone width")
    num_layers: int = opt(6, "backbone depth")
    num_heads: int = opt(8, "attention heads")
    num_kv_heads: int = opt(4, "key/value heads (grouped-query attention)")
    intermediate_size: int = opt(768, "MLP width")
    block_size: int = opt(16, "reply block size (positions)")
    opening_block: int = opt(1, "DFM: positions of a reply's opening block, whose first token "
                             "says what the reply is: 1 (that token alone) up to --block-size "
                             "(the start of the text beside it: a short answer is one block); "
                             "the causal baseline keeps 1")
    text_path: str = opt("metric", "DFM path of text replies: metric (the metric-induced "
                         "path over text embeddings) or masked (a mixture path from <|null|>)",
                         choices=("metric", "masked"))
    # schedule
    stages: tuple = opt(("pt", "cpt", "sft"), "training stages in order (pt, cpt, sft)")
    pt_steps: int = opt(800, "steps of the PT stage")
    cpt_steps: int = opt(1300, "steps of the CPT stage")
    sft_steps: int = opt(1300, "steps of the SFT stage")
    minutes: float | None = opt(None, "a run of fixed wall time instead of fixed steps: the "
                                "learning rate follows the elapsed share of it, the stages "
                                "their shares of the steps, and the model is saved at the end")
    cpu_minutes: float | None = opt(None, "like --minutes, counted in the CPU time of the "
                                    "training process and its eSpeak children: a budget that "
                                    "other work on the machine does not eat into (the "
                                    "learning-speed harness uses it)")
    batch: int = opt(32, "at most this many examples per step ...")
    batch_tokens: int = opt(2560, "... and at most this many padded positions")
    lr: float = opt(1e-3, "peak learning rate (linear warm-up, cosine to 10%)")
    warmup: int = opt(200, "warm-up steps")
    max_len: int = opt(448, "longest training sequence; longer examples are skipped")
    cond_dropout: float = opt(0.1, "share of generation examples trained without their prompt")
    retrieval_pairs: int = opt(6, "(item, description) pairs per step for the retrieval term")
    w_retrieval: float = opt(0.2, "weight of the retrieval term")
    w_image_rec: float = opt(0.1, "weight of the image decoder's reconstruction")
    w_audio_rec: float = opt(0.1, "weight of the audio decoder's reconstruction")
    save_every: int = opt(250, "steps between saved states")
    precision: str = opt("auto", "bf16 autocast, fp32, or auto: bf16 on a GPU, fp32 on a CPU "
                         "(on a CPU without bf16 instructions, AVX2 only, a bf16 matrix "
                         "product took 40x as long as an fp32 one)",
                         choices=("auto", "bf16", "fp32"))
    data_workers: int = opt(1, "processes preparing batches (0: in the training process)")
    threads: int | None = opt(None, "CPU threads of the training step (default: one per "
                              "core; two runs side by side want 1 each)")
    max_minutes: float | None = opt(None, "save and stop after this long; rerun to continue")
    causal: bool = opt(False, "train the autoregressive baseline (next-token, causal "
                       "attention; it reads and never changes the tokenizers)")
    all_blocks: bool = opt(False, "DFM: teach every reply block per example (noised copies)")
    all_blocks_from: int = opt(1750, "switch to --all-blocks from this step on")
    per_example_loss: bool = opt(False, "every example weighs the same in the loss (default: "
                                 "every variable, which gives image replies most of it)")
    code_time_power: float = opt(1.0, "DFM: image / audio reply blocks at t = u^P (P > 1: "
                                 "nearer noise, where the prompt is all there is)")
    mix: dict | None = opt(None, "task weights replacing every stage's mixture, e.g. "
                           "t2i=3,caption=1")
    one_modality: bool = opt(False, "every batch's replies of one modality")
    curriculum: bool = opt(False, "reading before generation: the first third of the steps "
                           "draws only the tasks that answer in text, then the mixtures")
    bank: Path | None = opt(None, "read examples from this example bank "
                            "(python -m nextomni.data.bank) instead of making them")
    speech_augment: float = opt(0.8, "share of user utterances heard through noise, "
                                "reverberation and a level change (data/augment.py)")
    tokenizers: Path | None = opt(None, "where the tokenizers are (default --init-from, "
                                  "else --out); the baseline links to them")
    init_from: Path | None = opt(None, "start from this checkpoint's weights (fresh "
                                 "optimizer and schedule)")

    @property
    def budget_s(self) -> float | None:
        """The run's fixed time in seconds (wall or CPU), or None for a run of fixed steps."""
        m = self.minutes if self.minutes is not None else self.cpu_minutes
        return None if m is None else 60.0 * m

    @property
    def total_steps(self) -> int:
        return sum(getattr(self, f"{s}_steps") for s in self.stages)


STAGE_NAMES = ("pt", "cpt", "sft")


def uses_bf16(cfg: OmniTrainConfig, device_type: str) -> bool:
    """Whether the run's steps autocast to bf16 on `device_type` ("cpu", "cuda", ...)."""
    return cfg.precision == "bf16" or (cfg.precision == "auto" and device_type != "cpu")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """One flag per field; booleans that default to True get a `--no-...` flag instead."""
    p = argparse.ArgumentParser(description=description)
    hints = get_type_hints(OmniTrainConfig)
    for f in dataclasses.fields(OmniTrainConfig):
        # argparse formats help strings with %: a literal one is written %%
        kind, help_ = hints[f.name], f.metadata["help"].replace("%", "%%")
        if kind is bool:
            if f.default:
                p.add_argument(_flag("no_" + f.name), dest=f.name, action="store_false",
                               help=f"turn off: {help_}")
            else:
                p.add_argument(_flag(f.name), action="store_true", help=help_)
            continue
        base = next((t for t in (int, float, Path, str, dict, tuple)
                     if t is kind or t in getattr(kind, "__args__", ())), str)
        conv = {dict: str, tuple: str}.get(base, base)
        p.add_argument(_flag(f.name), type=conv, default=None, help=help_,
                       choices=f.metadata.get("choices"))
    return p


def parse_args(argv=None, description: str = "") -> OmniTrainConfig:
    from nextomni.data.mixture import parse_mix

    p = build_parser(description)
    a = vars(p.parse_args(argv))
    d = OmniTrainConfig()
    values = {k: v for k, v in a.items() if v is not None and v != getattr(d, k)}
    if "stages" in values:
        values["stages"] = tuple(s.strip() for s in values["stages"].split(",") if s.strip())
        bad = [s for s in values["stages"] if s not in STAGE_NAMES]
        if bad:
            p.error(f"unknown stage(s) {bad}; choose from {', '.join(STAGE_NAMES)}")
    if "mix" in values:
        try:
            values["mix"] = parse_mix(values["mix"])
        except ValueError as e:
            p.error(str(e))
    cfg = dataclasses.replace(d, **values)
    for problem in check(cfg):
        p.error(problem)
    return cfg


def check(cfg: OmniTrainConfig) -> list[str]:
    """What is wrong with `cfg`, in words (empty when nothing is)."""
    problems = []
    if not 1 <= cfg.opening_block <= cfg.block_size:
        problems.append("--opening-block is between 1 and --block-size")
    if cfg.code_time_power <= 0:
        problems.append("--code-time-power must be > 0")
    if cfg.threads is not None and cfg.threads < 1:
        problems.append("--threads must be at least 1")
    if cfg.minutes is not None and cfg.minutes <= 0:
        problems.append("--minutes must be > 0")
    if cfg.cpu_minutes is not None and cfg.cpu_minutes <= 0:
        problems.append("--cpu-minutes must be > 0")
    if cfg.minutes is not None and cfg.cpu_minutes is not None:
        problems.append("give --minutes or --cpu-minutes, not both")
    if not 0 <= cfg.speech_augment <= 1:
        problems.append("--speech-augment is a share between 0 and 1")
    return problems
