"""Deploy this repository to a Hugging Face Space through huggingface_hub.

    python scripts/deploy_space.py SPACE_ID [--dry-run] [--root DIR] [--private] [--message M]

The Hub refuses a git push holding binary files that are not stored through Xet/LFS, whatever
their size, and this repository holds safetensors, PNG, WAV and MP4 files. huggingface_hub
stores them through Xet itself, so the deploy is one commit made with it: every file of the
working tree except those the rules below leave out. `--dry-run` prints that list (path and
size of every file, the total) and what is left out, and sends nothing.

Symlinked folders (checkpoints/nano-ar links the nano tokenizers) are uploaded as the files
they point to: a Space repository holds plain files, and `upload_folder`'s own listing skips
linked folders. The token comes from HF_TOKEN or from `hf auth login`. Files already on the
Space that are not in the list stay there.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# what stays home, written as in .gitignore: "name/" a folder anywhere, "/name/" a folder at the
# top, anything else a file name anywhere (`*` and `?` as in the shell) -> why
LEFT_OUT = {
    ".git/": "git history",
    ".venv/": "virtual environment",
    "venv/": "virtual environment",
    "__pycache__/": "bytecode caches",
    ".pytest_cache/": "pytest cache",
    ".cache/": "caches",
    "*.egg-info/": "build metadata",
    ".ipynb_checkpoints/": "notebook checkpoints",
    "/runs/": "training runs",
    "/artifacts/": "test outputs (screenshots, logs)",
    "/data_cache/": "data caches",
    "/preview/": "OmniWorld previews",
    "*.pyc": "bytecode",
    ".DS_Store": "desktop metadata",
    "*.db": "session databases",
    "*.db-wal": "session databases",
    "*.db-shm": "session databases",
    "*.secret": "keys of session databases",
    "*.env": "environment files (tokens)",
}


@dataclass
class Plan:
    """What a deploy sends (path in the Space -> file on disk, sizes) and what it leaves out."""
    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, list[int]] = field(default_factory=dict)  # pattern -> [files, bytes]

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def leave_out(self, rule: str, files: int, size: int) -> None:
        count = self.left_out.setdefault(rule, [0, 0])
        count[0] += files
        count[1] += size


def rule_for(rel: str, rules=LEFT_OUT) -> str | None:
    """The first rule that leaves `rel` out (a path relative to the root with '/'; a folder
    ends with '/'), or None."""
    parts = rel.split("/")
    for rule in rules:
        name = rule.strip("/")
        if not rule.endswith("/"):
            hit = fnmatchcase(parts[-1], name)
        elif rule.startswith("/"):
            hit = len(parts) > 1 and fnmatchcase(parts[0], name)
        else:
            hit = any(fnmatchcase(part, name) for part in parts[:-1])
        if hit:
            return rule
    return None


def loops(folder: Path, root: Path) -> bool:
    """True when `folder` is a link back to one of the folders above it (a cycle)."""
    real = folder.resolve()
    return any(real == up.resolve() for up in folder.parents if up.is_relative_to(root))


def folder_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) below `folder`, symlinks not followed."""
    paths = [Path(sub, n) for sub, _, names in os.walk(folder) for n in names]
    return len(paths), sum(p.lstat().st_size for p in paths)


def plan(root: Path = ROOT, rules=LEFT_OUT) -> Plan:
    """Walk `root` (following symlinked folders once) and sort every file into sent or left
    out; a left-out folder is counted, not listed."""
    out = Plan(Path(root))
    for folder, dirs, names in os.walk(root, followlinks=True):
        if loops(Path(folder), Path(root)):
            dirs[:] = []
            continue
        dirs.sort()
        for name in list(dirs):  # a left-out folder is counted whole, links not followed
            rule = rule_for(Path(folder, name).relative_to(root).as_posix() + "/", rules)
            if rule is not None:
                dirs.remove(name)
                out.leave_out(rule, *folder_size(Path(folder, name)))
        for name in sorted(names):
            path = Path(folder, name)
            if not path.is_file():  # a dangling link
                continue
            rel, size = path.relative_to(root).as_posix(), path.stat().st_size
            rule = rule_for(rel, rules)
            if rule is None:
                out.files[rel], out.sizes[rel] = path, size
            else:
                out.leave_out(rule, 1, size)
    return out


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def describe(p: Plan, space: str) -> str:
    lines = [f"{human(p.sizes[rel]):>10}  {rel}" for rel in sorted(p.files)]
    lines.append(f"{len(p.files)} files, {human(p.total)} would go up to spaces/{space}")
    lines.append("left out:")
    for rule, (count, size) in sorted(p.left_out.items()):
        lines.append(f"{human(size):>10}  {rule} ({count} file{'s' * (count != 1)}: "
                     f"{LEFT_OUT.get(rule, '')})")
    return "\n".join(lines)


def check_space_config(p: Plan) -> None:
    """Fail before sending anything when the README's front matter (the Space's
    configuration) is missing or names an app file that would not go up."""
    if "README.md" not in p.files:
        raise SystemExit("README.md (the Space's configuration) is not in the upload")
    text = p.files["README.md"].read_text(encoding="utf-8")
    head = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    meta = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    meta = {k.strip(): v.strip().strip('"') for k, v in meta.items()}
    if meta.get("sdk") != "gradio":
        raise SystemExit("README.md's front matter must say `sdk: gradio`")
    if meta.get("app_file", "app.py") not in p.files:
        raise SystemExit(f"the app file {meta.get('app_file', 'app.py')!r} is not in the upload")


def upload(p: Plan, space: str, private: bool, message: str) -> str:
    """One commit to the Space holding every planned file; returns the commit's address."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    if not get_token():
        raise SystemExit("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi()
    api.create_repo(space, repo_type="space", space_sdk="gradio", private=private,
                    exist_ok=True)
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(p.files[rel]))
           for rel in sorted(p.files)]
    info = api.create_commit(space, operations=ops, commit_message=message,
                             repo_type="space")
    return info.commit_url


def main(argv=None) -> Plan:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("space", help="the Space's id, owner/name")
    a.add_argument("--root", type=Path, default=ROOT, help="the folder to deploy")
    a.add_argument("--dry-run", action="store_true", help="list what would go up; send nothing")
    a.add_argument("--private", action="store_true", help="create the Space private")
    a.add_argument("--message", default="Deploy NExT-OMNI chat")
    args = a.parse_args(argv)
    if args.space.count("/") != 1:
        a.error(f"the Space id must be owner/name, not {args.space!r}")
    p = plan(args.root.resolve())
    check_space_config(p)
    print(describe(p, args.space))
    if not args.dry_run:
        print(f"uploaded: {upload(p, args.space, args.private, args.message)}")
    return p


if __name__ == "__main__":
    main()
