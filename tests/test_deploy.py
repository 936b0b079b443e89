"""scripts/deploy_space.py offline: the dry run's lists, and the upload with the Hub faked."""

from pathlib import Path

import huggingface_hub
import pytest

from scripts import deploy_space

FRONT = "---\ntitle: t\nsdk: gradio\napp_file: app.py\n---\n# t\n"


def write(root: Path, rel: str, size: int = 10) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


@pytest.fixture
def tree(tmp_path):
    """A small project: what a Space needs, and what it must not get."""
    root = tmp_path / "project"
    for rel, size in {"app.py": 5, "nextomni/model.py": 7, "ui/examples/scene.png": 30,
                      "checkpoints/nano/model.safetensors": 1000,
                      "checkpoints/nano/image_tokenizer/model.safetensors": 400}.items():
        write(root, rel, size)
    (root / "README.md").write_text(FRONT)
    (root / "checkpoints/nano-ar").mkdir()
    (root / "checkpoints/nano-ar/image_tokenizer").symlink_to("../nano/image_tokenizer")
    (root / "nextomni/loop").symlink_to("..")  # a cycle is walked once
    for rel in (".venv/lib/python3.11/site.py", ".venv/bin/python", "runs/omni/state.pt",
                ".git/HEAD", ".git/objects/ab/cdef", "nextomni/__pycache__/model.cpython.pyc",
                "artifacts/browser.png", ".pytest_cache/v/cache", "sessions.db",
                "sessions.db.secret", "data_cache/bank.npz", "stray.pyc", ".env"):
        write(root, rel, 100)
    return root


def no_hub(*args, **kwargs):
    raise AssertionError("a dry run must not reach the Hub")


def test_dry_run_lists_what_would_go_up_and_what_is_left_out(tree, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "HfApi", no_hub)
    p = deploy_space.main(["someone/chat", "--dry-run", "--root", str(tree)])
    assert sorted(p.files) == [
        "README.md", "app.py", "checkpoints/nano-ar/image_tokenizer/model.safetensors",
        "checkpoints/nano/image_tokenizer/model.safetensors", "checkpoints/nano/model.safetensors",
        "nextomni/model.py", "ui/examples/scene.png"]
    assert p.sizes["checkpoints/nano-ar/image_tokenizer/model.safetensors"] == 400
    assert p.total == len(FRONT) + 5 + 7 + 30 + 1000 + 400 + 400
    assert {rule: files for rule, (files, _) in p.left_out.items()} == {
        ".venv/": 2, "/runs/": 1, ".git/": 2, "__pycache__/": 1, "/artifacts/": 1,
        ".pytest_cache/": 1, "*.db": 1, "*.secret": 1, "/data_cache/": 1, "*.pyc": 1,
        "*.env": 1}
    assert p.left_out[".venv/"][1] == 200
    printed = capsys.readouterr().out
    assert "7 files, 1.9 KB would go up to spaces/someone/chat" in printed
    assert "1.0 KB  checkpoints/nano/model.safetensors" in printed
    assert "200 B  .venv/ (2 files: virtual environment)" in printed


def test_the_repository_sends_its_app_and_both_checkpoints_whole():
    p = deploy_space.plan()
    for rel in ("app.py", "README.md", "requirements.txt", "ui/app.py",
                "checkpoints/nano/model.safetensors", "checkpoints/nano/tokenizer.json",
                "checkpoints/nano-ar/model.safetensors",
                "checkpoints/nano-ar/audio_tokenizer/model.safetensors"):
        assert rel in p.files, rel
    kept = [rel for rel in p.files if "__pycache__" in rel or rel.endswith(".pyc")
            or rel.split("/")[0] in (".venv", "runs", ".git", "artifacts")]
    assert kept == []
    assert p.total < 200e6  # checkpoints and examples, not history or environments


def test_every_gitignored_path_is_left_out():
    for line in (deploy_space.ROOT / ".gitignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        sample = pattern.lstrip("/").replace("*", "a") + ("x" if pattern.endswith("/") else "")
        samples = [sample] + ([] if pattern.startswith("/") else [f"pkg/{sample}"])
        for rel in samples:
            assert deploy_space.rule_for(rel), f"{rel} (.gitignore: {pattern}) would go up"


class FakeApi:
    calls: list = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def create_commit(self, repo_id, operations, **kw):
        self.calls.append(("create_commit", repo_id, kw, operations))
        return type("Info", (), {"commit_url": f"https://hub/spaces/{repo_id}/commit/1"})()


def test_upload_sends_the_planned_files_in_one_commit(tree, monkeypatch, capsys):
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    p = deploy_space.main(["someone/chat", "--root", str(tree), "--private"])
    (name, space, kw), (commit, space2, commit_kw, ops) = FakeApi.calls
    assert (name, space, commit, space2) == ("create_repo", "someone/chat", "create_commit",
                                             "someone/chat")
    assert kw == {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True}
    assert commit_kw["repo_type"] == "space"
    assert [op.path_in_repo for op in ops] == sorted(p.files)
    assert all(Path(op.path_or_fileobj) == p.files[op.path_in_repo] for op in ops)
    assert "uploaded: https://hub/spaces/someone/chat/commit/1" in capsys.readouterr().out


def test_without_a_token_it_says_how_to_log_in(tree, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "HfApi", no_hub)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(SystemExit, match="HF_TOKEN or run `hf auth login`"):
        deploy_space.main(["someone/chat", "--root", str(tree)])


@pytest.mark.parametrize("readme, match", [
    ("# no front matter\n", "sdk: gradio"),
    (FRONT.replace("app.py", "main.py"), "main.py"),
])
def test_a_space_without_its_configuration_is_refused(tree, monkeypatch, readme, match):
    monkeypatch.setattr(huggingface_hub, "HfApi", no_hub)
    (tree / "README.md").write_text(readme)
    with pytest.raises(SystemExit, match=match):
        deploy_space.main(["someone/chat", "--root", str(tree), "--dry-run"])
    with pytest.raises(SystemExit):
        deploy_space.main(["no-owner", "--root", str(tree), "--dry-run"])
