"""scripts/retrain_nano.sh, the one command behind checkpoints/nano: its steps must stay
valid for the training command line and chain into each other (a change detector for the
recipe: seeds, steps and mixtures as shipped), finished steps are skipped, and a failure
leaves the shipped checkpoints as they were."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from nextomni.train import omni as train_omni
from nextomni.train import tokenizers as train_tokenizers

ROOT = Path(__file__).resolve().parents[1]


def dry_run(runs: str) -> list[list[str]]:
    env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable, DATA_WORKERS="3")
    out = subprocess.run(["bash", "scripts/retrain_nano.sh", runs], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return [shlex.split(line) for line in out.splitlines() if line.strip()]


def test_every_step_parses_and_each_piece_starts_from_the_one_before(tmp_path):
    runs = tmp_path / "my runs"  # a space: every path stays one argument
    lines = dry_run(str(runs))
    assert not runs.exists()  # a dry run writes nothing
    assert lines[0][:3] == [sys.executable, "-m", "nextomni.train.tokenizers"]
    tok_cfg, parts = train_tokenizers.parse_args(lines[0][3:])
    assert tok_cfg.out == runs / "base" and parts == {"text", "image", "audio"}
    assert tok_cfg.work == runs / "work-tokenizers"  # its own state, so it resumes
    assert lines[-1][0] == "ship"
    steps = [train_omni.parse_args(line[3:]) for line in lines[1:-1]]
    assert all(line[:3] == [sys.executable, "-m", "nextomni.train.omni"]
               for line in lines[1:-1])
    dfm = [s for s in steps if not s.causal]
    ar = [s for s in steps if s.causal]
    assert len(dfm) == len(ar) >= 3

    # the three-stage runs, then warm-started SFT pieces, each from the previous output
    for line in (dfm, ar):
        first, pieces = line[0], line[1:]
        assert first.stages == ("pt", "cpt", "sft") and first.init_from is None
        assert first.data_workers == 3 and first.seed == 0
        prev = first.out
        for s in pieces:
            assert s.stages == ("sft",) and s.init_from == prev and s.threads == 1
            prev = s.out
        assert [s.seed for s in pieces] == [1, 5, 6, 7, 8, 9]
    assert lines[-1][1:] == [str(dfm[-1].out), str(ar[-1].out)]

    # the baseline reads the DFM line's tokenizers; only DFM noises code blocks nearer t=0
    assert all(s.tokenizers == dfm[0].out for s in ar)
    assert all(s.all_blocks and s.batch_tokens == 4096 for s in dfm)
    assert [s.code_time_power for s in dfm[1:]] == [1.0, 3, 3, 3, 3, 3]
    assert all(s.code_time_power == 1.0 for s in ar)
    # the generation-weighted pieces: a third of the examples text -> image, speech raised
    for d, a in zip(dfm[2:], ar[2:]):
        assert d.mix == a.mix and d.mix["t2i"] == 6 and d.sft_steps == a.sft_steps
    assert [s.mix["tts"] for s in dfm[2:]] == [2.5, 2.5, 3.5, 3.5, 3.5]
    assert sum(s.sft_steps for s in dfm[2:]) == 8000


def finished_runs(runs: Path, skip: tuple[str, ...] = ()) -> None:
    """Every step's output folder as a finished one (weights named after the step)."""
    names = ["base", "base-ar"] + [f"{n}{s}" for n in ("cont", "gen1", "gen2", "gen3",
                                                        "gen4", "gen5") for s in ("", "-ar")]
    for n in (n for n in names if n not in skip):
        (runs / n / "backbone").mkdir(parents=True)
        (runs / n / "model.safetensors").write_bytes(n.encode())
        (runs / n / "config.json").write_text("{}")
    for n in ("base", "gen5"):  # the DFM folders hold their tokenizers
        if n not in skip:
            (runs / n / "tokenizer.json").write_text("{}")
            (runs / n / "image_tokenizer").mkdir()
            (runs / n / "audio_tokenizer").mkdir()


def run_copy(tmp_path: Path, runs: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """The script run from a scratch tree (so that the real checkpoints stay put), with a
    Python that fails: any training step it starts fails."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True, exist_ok=True)
    (tree / "checkpoints").mkdir(exist_ok=True)
    script = tree / "scripts" / "retrain_nano.sh"
    script.write_text((ROOT / "scripts" / "retrain_nano.sh").read_text())
    ship = tree / "scripts" / "ship_nano.sh"
    ship.write_text((ROOT / "scripts" / "ship_nano.sh").read_text())
    out = subprocess.run(["bash", str(script), str(runs)], cwd=tree,
                         env=dict(os.environ, PYTHON="false"), capture_output=True, text=True)
    return out, tree / "checkpoints"


def test_finished_steps_are_skipped_and_the_last_ships(tmp_path):
    runs = tmp_path / "runs"
    finished_runs(runs)
    out, ckpt = run_copy(tmp_path, runs)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("done already") == 14  # the two three-stage runs, 6 pairs
    assert (ckpt / "nano" / "model.safetensors").read_bytes() == b"gen5"
    assert (ckpt / "nano-ar" / "model.safetensors").read_bytes() == b"gen5-ar"
    link = ckpt / "nano-ar" / "tokenizer.json"
    assert link.is_symlink() and os.readlink(link) == "../nano/tokenizer.json"
    assert link.read_text() == "{}"
    assert sorted(p.name for p in ckpt.iterdir()) == ["nano", "nano-ar"]  # no leftovers


def test_a_failed_step_stops_the_script_and_keeps_the_shipped_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    finished_runs(runs, skip=("gen5-ar",))  # its training will fail
    shipped = tmp_path / "tree" / "checkpoints" / "nano"
    shipped.mkdir(parents=True)
    (shipped / "model.safetensors").write_bytes(b"shipped")
    out, ckpt = run_copy(tmp_path, runs)
    assert out.returncode != 0 and "failed: gen5" in out.stderr
    assert (ckpt / "nano" / "model.safetensors").read_bytes() == b"shipped"
    assert sorted(p.name for p in ckpt.iterdir()) == ["nano"]


def test_the_recipe_command_trains_both_twins_on_one_bank(tmp_path):
    from nextomni.train.config import uses_bf16

    for gpu, codes in (("0", "local"), ("1", "local"), ("0", "global")):
        env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable, GPU=gpu, WORKERS="4",
                   IMAGE_CODES=codes)
        out = subprocess.run(["bash", "scripts/train_nano_recipe.sh", str(tmp_path / "r")],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        lines = [shlex.split(line) for line in out.stdout.splitlines() if line.strip()]
        tok = tmp_path / "r" / "tokenizers" if codes == "local" else Path("checkpoints/nano")
        if codes == "local":  # a new image tokenizer first, of codes local to their patch
            first = lines.pop(0)
            assert first[:3] == [sys.executable, "-m", "nextomni.train.tokenizers"]
            assert "--local-image-codes" in first and first[first.index("--out") + 1] == str(tok)
            assert ("--device" in first) == (gpu == "1")
        assert lines[0][:3] == [sys.executable, "-m", "nextomni.data.bank"]
        assert lines[0][lines[0].index("--out") + 1] == str(tmp_path / "r" / "bank")
        dfm, ar = (train_omni.parse_args(line[3:]) for line in lines[1:])
        assert dfm.tokenizers == ar.tokenizers == tok
        assert not dfm.causal and ar.causal and dfm.bank == ar.bank == tmp_path / "r" / "bank"
        same = ("stages", "pt_steps", "cpt_steps", "sft_steps", "seed", "batch_tokens",
                "hidden_size", "num_layers", "minutes", "tokenizers", "lr")
        assert all(getattr(dfm, k) == getattr(ar, k) for k in same)
        assert dfm.init_from is None and dfm.out != ar.out
        assert uses_bf16(dfm, "cuda") and uses_bf16(dfm, "cpu") == (gpu == "1")
        assert (dfm.minutes is not None) == (gpu == "1") and (dfm.threads == 1) == (gpu == "0")
    assert not (tmp_path / "r").exists()


def test_shipping_a_recipe_run_copies_the_tokenizers_it_links(tmp_path):
    """A run of scripts/train_nano_recipe.sh links the shipped tokenizers it trained with
    (runs/recipe/nano/tokenizer.json -> ../../../checkpoints/nano/tokenizer.json); shipping
    it replaces checkpoints/nano, so the links must become files first."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    (tree / "scripts" / "ship_nano.sh").write_text((ROOT / "scripts" / "ship_nano.sh").read_text())
    shipped = tree / "checkpoints" / "nano"
    (shipped / "image_tokenizer").mkdir(parents=True)
    (shipped / "audio_tokenizer").mkdir()
    (shipped / "tokenizer.json").write_text('{"bpe": 1}')
    (shipped / "image_tokenizer" / "model.safetensors").write_bytes(b"image")
    (shipped / "model.safetensors").write_bytes(b"old")
    for name in ("nano", "nano-ar"):
        run = tree / "runs" / "recipe" / name
        (run / "backbone").mkdir(parents=True)
        (run / "model.safetensors").write_bytes(f"new {name}".encode())
        (run / "config.json").write_text("{}")
        for t in ("tokenizer.json", "image_tokenizer", "audio_tokenizer"):
            (run / t).symlink_to(Path("../../../checkpoints/nano") / t)
    subprocess.run(["bash", "scripts/ship_nano.sh", "runs/recipe/nano", "runs/recipe/nano-ar"],
                   cwd=tree, check=True, capture_output=True)
    nano = tree / "checkpoints" / "nano"
    assert (nano / "model.safetensors").read_bytes() == b"new nano"
    assert not (nano / "tokenizer.json").is_symlink()
    assert (nano / "tokenizer.json").read_text() == '{"bpe": 1}'
    assert (nano / "image_tokenizer" / "model.safetensors").read_bytes() == b"image"
    ar = tree / "checkpoints" / "nano-ar"
    assert (ar / "model.safetensors").read_bytes() == b"new nano-ar"
    assert (ar / "tokenizer.json").read_text() == '{"bpe": 1}'
