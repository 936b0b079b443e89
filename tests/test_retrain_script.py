"""scripts/retrain_nano.sh, the one command behind checkpoints/nano: its steps must stay
valid for the training CLI and chain into each other as the README's recipe says."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from nextomni.train import omni as train_omni
from nextomni.train import tokenizers as train_tokenizers

ROOT = Path(__file__).resolve().parents[1]


def dry_run(runs: str = "runs/x") -> list[list[str]]:
    env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable, DATA_WORKERS="3")
    out = subprocess.run(["bash", "scripts/retrain_nano.sh", runs], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return [shlex.split(line) for line in out.splitlines() if line.strip()]


def test_every_step_parses_and_each_piece_starts_from_the_one_before():
    lines = dry_run()
    assert lines[0][:3] == [sys.executable, "-m", "nextomni.train.tokenizers"]
    tok_cfg, parts = train_tokenizers.parse_args(lines[0][3:])
    assert str(tok_cfg.out) == "runs/x/base" and parts == {"text", "image", "audio"}
    assert str(tok_cfg.work) == "runs/x/work-tokenizers"  # its own state, so it resumes
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


def test_a_finished_step_is_skipped(tmp_path):
    """Rerunning continues: steps whose output holds weights are not run again (here every
    step is finished, so the command only ships, and nothing trains)."""
    runs = tmp_path / "runs"
    names = ["base", "base-ar"] + [f"{n}{s}" for n in ("cont", "gen1", "gen2", "gen3",
                                                        "gen4", "gen5") for s in ("", "-ar")]
    for n in names:
        (runs / n / "backbone").mkdir(parents=True)
        (runs / n / "model.safetensors").write_bytes(n.encode())
        (runs / n / "config.json").write_text("{}")
    for n in ("base", "gen5"):  # the DFM folders hold their tokenizers
        (runs / n / "tokenizer.json").write_text("{}")
        (runs / n / "image_tokenizer").mkdir()
        (runs / n / "audio_tokenizer").mkdir()
    # run a copy of the script in a scratch tree so that the real checkpoints stay put
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    (tree / "checkpoints").mkdir()
    script = tree / "scripts" / "retrain_nano.sh"
    script.write_text((ROOT / "scripts" / "retrain_nano.sh").read_text())
    env = dict(os.environ, PYTHON="false")  # any training step run would fail
    out = subprocess.run(["bash", str(script), str(runs)], cwd=tree, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "done already" in out.stdout
    ckpt = tree / "checkpoints"
    assert (ckpt / "nano" / "model.safetensors").read_bytes() == b"gen5"
    assert (ckpt / "nano-ar" / "model.safetensors").read_bytes() == b"gen5-ar"
    link = ckpt / "nano-ar" / "tokenizer.json"
    assert link.is_symlink() and os.readlink(link) == "../nano/tokenizer.json"
    assert link.read_text() == "{}"
