"""The example bank: OmniWorld examples made once, as plain media, into shards on disk.

Making an example costs ~50 ms of CPU (rendering, eSpeak, video); a training step on 2 cores
needs a few dozen of them. Written once into a bank, they are read back in microseconds, so a
step costs model compute only, and epochs repeat examples instead of paying for new ones.

    python -m nextomni.data.bank --out runs/bank --examples 24000 [--workers 2]

Format: Arrow shards through Hugging Face `datasets` (`save_to_disk`, memory-mapped on read).
Examples are uneven, nested records (turns of text, pictures, speech, clips), which Arrow holds
as one row each (a JSON layout plus a list of binary arrays) with no pickling and no loading of
the whole bank into memory. Each shard is one task's `SHARD` examples from seeds drawn for
(task, shard index), written to a temporary folder and renamed when complete: a rerun skips
the finished shards and makes only the rest, and a larger `--examples` extends a bank.

Besides the tasks, the bank holds what the other training terms read: retrieval pairs
("pair"), one-edit-apart image siblings ("siblings") and single utterances ("utterance") for
the audio decoder's reconstruction.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextomni.chat import Part, Turn
from nextomni.media import VideoClip

log = logging.getLogger("nextomni.data.bank")

SHARD = 200
EXTRA = ("pair", "siblings", "utterance")  # records for the retrieval and reconstruction terms
# share of the examples each extra record kind gets, on top of the tasks'
EXTRA_SHARE = {"pair": 0.15, "siblings": 0.08, "utterance": 0.04}


# --------------------------------------------------------------------------- records

def encode_record(task: str, seed: int, turns: list[Turn]) -> dict:
    """One row: the turns' layout as JSON, their media as a list of raw arrays."""
    arrays: list[bytes] = []

    def ref(a: np.ndarray) -> dict:
        arrays.append(np.ascontiguousarray(a).tobytes())
        return {"ref": len(arrays) - 1, "shape": list(a.shape), "dtype": str(a.dtype)}

    layout = []
    for t in turns:
        parts = []
        for p in t.parts:
            if p.kind == "text":
                parts.append({"kind": "text", "text": str(p.value)})
            elif p.kind == "image":
                parts.append({"kind": "image", **ref(np.asarray(p.value, np.uint8))})
            elif p.kind == "audio":
                parts.append({"kind": "audio", **ref(pcm16(p.value))})
            elif p.kind == "video":
                v: VideoClip = p.value
                parts.append({"kind": "video", **ref(v.frames), "fps": v.fps,
                              "duration": v.duration,
                              "audio": None if v.audio is None else ref(pcm16(v.audio))})
            else:
                raise ValueError(f"a bank record holds text, image, audio or video, not {p.kind!r}")
        layout.append({"role": t.role, "parts": parts})
    return {"task": task, "seed": int(seed), "layout": json.dumps(layout), "arrays": arrays}


def decode_record(row: dict) -> list[Turn]:
    """The turns of a row, as plain media (the inverse of `encode_record`)."""
    arrays = row["arrays"]

    def array(spec: dict) -> np.ndarray:
        a = np.frombuffer(arrays[spec["ref"]], dtype=spec["dtype"]).reshape(spec["shape"])
        return a.astype(np.float32) / 32768.0 if spec["dtype"] == "int16" else a

    turns = []
    for t in json.loads(row["layout"]):
        parts = []
        for p in t["parts"]:
            if p["kind"] == "text":
                parts.append(Part("text", p["text"]))
            elif p["kind"] == "video":
                sound = None if p["audio"] is None else array(p["audio"])
                parts.append(Part("video", VideoClip(array(p), p["fps"], p["duration"], sound)))
            else:
                parts.append(Part(p["kind"], array(p)))
        turns.append(Turn(t["role"], parts))
    return turns


def pcm16(wave) -> np.ndarray:
    return (np.clip(np.asarray(wave, np.float32), -1, 1) * 32767).astype(np.int16)


# --------------------------------------------------------------------------- writing

@dataclass(frozen=True)
class Shard:
    task: str
    index: int
    size: int = SHARD

    @property
    def name(self) -> str:
        return f"{self.task}-{self.index:05d}"

    def seeds(self, bank_seed: int) -> list[int]:
        from nextomni.data.splits import TRAIN_SEEDS
        from nextomni.data.tasks import TASKS

        kinds = sorted(TASKS) + list(EXTRA)
        rng = np.random.default_rng([bank_seed, kinds.index(self.task), self.index, 17])
        return [int(s) for s in rng.integers(TRAIN_SEEDS.start, TRAIN_SEEDS.stop, self.size)]


def plan(examples: int, weights: dict[str, float]) -> list[Shard]:
    """The shards of a bank of about `examples` task examples, split by `weights`, plus the
    extra records (`EXTRA_SHARE` of `examples` each)."""
    total = sum(weights.values())
    counts = {t: examples * w / total for t, w in weights.items() if w > 0}
    counts.update({k: examples * share for k, share in EXTRA_SHARE.items()})
    return [Shard(t, i) for t, n in counts.items() for i in range(max(1, round(n / SHARD)))]


def make_record(task: str, seed: int) -> dict:
    """The bank row of (task, seed)."""
    return encode_record(task, seed, record_turns(task, seed))


def record_turns(task: str, seed: int) -> list[Turn]:
    """The turns of (task, seed) as plain media: a task example, or one of the extra kinds."""
    from nextomni.data.media import as_media, part_media
    from nextomni.data.tasks import make_example, retrieval_pair, retrieval_siblings

    if task == "pair":
        turns = [Turn("user", [part_media(p) for p in retrieval_pair(seed)])]
    elif task == "siblings":
        turns = [Turn("user", [part_media(p) for pair in retrieval_siblings(seed) for p in pair])]
    elif task == "utterance":
        from nextomni.data.corpus import spoken_sentences
        from nextomni.data.speech import random_voice, speak

        rng = np.random.default_rng([seed, 19])
        said = spoken_sentences(seed)[int(rng.integers(5))]
        turns = [Turn("user", [Part("audio", speak(said, random_voice(rng)))])]
    else:
        turns = as_media(make_example(task, seed).turns)
    return turns


def write_shard(out: Path, shard: Shard, bank_seed: int = 0) -> Path:
    """Make and write one shard (skipped when it exists); returns its folder."""
    import datasets

    from nextomni.threads import one_thread

    one_thread()
    final = out / shard.name
    if final.exists():
        return final
    datasets.disable_progress_bars()
    rows = [make_record(shard.task, s) for s in shard.seeds(bank_seed)]
    tmp = out / f".tmp-{shard.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.Dataset.from_list(rows, features=FEATURES()).save_to_disk(str(tmp))
    os.replace(tmp, final)
    return final


def FEATURES():
    import datasets

    return datasets.Features({"task": datasets.Value("string"), "seed": datasets.Value("int64"),
                              "layout": datasets.Value("string"),
                              "arrays": datasets.Sequence(datasets.Value("binary"))})


def _write(args) -> str:
    out, shard, bank_seed = args
    return write_shard(out, shard, bank_seed).name


def write_bank(out: Path, shards: list[Shard], workers: int = 1, bank_seed: int = 0) -> None:
    """Every missing shard of `shards` under `out`, `workers` processes at a time, with a bar."""
    from multiprocessing import get_context

    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in shards if not (out / s.name).exists()]
    log.info("%d of %d shards to make in %s", len(todo), len(shards), out)
    jobs = [(out, s, bank_seed) for s in todo]
    bar = tqdm(total=len(shards), initial=len(shards) - len(todo), desc="bank", unit="shard")
    if workers <= 1:
        for j in jobs:
            _write(j)
            bar.update()
    else:
        with get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write, jobs):
                bar.update()
    bar.close()


# --------------------------------------------------------------------------- reading

class ExampleBank:
    """A bank's records, drawn per task in a fresh shuffled order each epoch."""

    def __init__(self, path: Path):
        import datasets

        shards = sorted(p for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith("."))
        if not shards:
            raise FileNotFoundError(f"{path} holds no bank shards; make them with "
                                    f"python -m nextomni.data.bank --out {path}")
        self.data = datasets.concatenate_datasets(
            [datasets.load_from_disk(str(p)) for p in shards])
        tasks = np.array(self.data["task"])
        self.rows = {t: np.flatnonzero(tasks == t) for t in np.unique(tasks)}
        self._order: dict[str, np.ndarray] = {}
        self._next: dict[str, int] = {}
        self.epochs: dict[str, int] = dict.fromkeys(self.rows, 0)

    def __len__(self) -> int:
        return len(self.data)

    def count(self, task: str) -> int:
        return len(self.rows.get(task, ()))

    def draw(self, task: str, rng: np.random.Generator) -> list[Turn]:
        """The next record of `task` in this epoch's order (a new order once all were read)."""
        if task not in self.rows:
            raise KeyError(f"the bank holds no {task!r} records (it has {sorted(self.rows)})")
        i = self._next.get(task, len(self.rows[task]))
        if i >= len(self.rows[task]):
            self._order[task] = rng.permutation(self.rows[task])
            self.epochs[task] += int(task in self._next)
            i = 0
        self._next[task] = i + 1
        return decode_record(self.data[int(self._order[task][i])])


def main(argv=None) -> None:
    from nextomni.data.mixture import STAGES, parse_mix

    p = argparse.ArgumentParser(description="Make (or extend) an OmniWorld example bank.")
    p.add_argument("--out", type=Path, default=Path("runs/bank"))
    p.add_argument("--examples", type=int, default=24_000, help="task examples in all")
    p.add_argument("--mix", default=None, help="task weights, e.g. t2i=2,vqa=1 (default: SFT's)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    p.add_argument("--seed", type=int, default=0, help="the bank's seed (which train seeds)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        weights = parse_mix(a.mix) if a.mix else STAGES["sft"]
    except ValueError as e:
        p.error(str(e))
    write_bank(a.out, plan(a.examples, weights), a.workers, a.seed)


if __name__ == "__main__":
    main()
