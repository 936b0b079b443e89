"""Pictures at a size a person can see. The nano model draws 64x64 images, which a chat bubble
shows about 50 pixels wide; the page is given an enlarged copy instead, scaled by a whole
factor with nearest-neighbour sampling, so every pixel stays a sharp square and nothing is
invented. The stored file, the export and the API keep the original."""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

VIEW_SIDE = 256  # a picture's longer side on the page, at least
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


def enlarge(img: Image.Image, side: int = VIEW_SIDE) -> Image.Image:
    """`img` scaled by the smallest whole factor that makes its longer side >= `side`
    (unchanged when it already is)."""
    factor = math.ceil(side / max(img.size))
    if factor <= 1:
        return img
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST)


class Display:
    """Makes the page's copies in `folder`: one per source file (reused while the file is
    unchanged), and a fresh one per denoising preview."""

    def __init__(self, folder: str | Path, side: int = VIEW_SIDE):
        self.folder, self.side = Path(folder), side
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, path: str | Path) -> str:
        """What the page should show for the file at `path`: an enlarged copy of a small
        picture, else the file itself (sound, video, large or unreadable pictures)."""
        p = Path(path)
        if p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            return str(path)
        st = p.stat()
        key = hashlib.sha1(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        out = self.folder / f"view-{key[:20]}.png"
        if out.exists():
            return str(out)
        try:
            with Image.open(p) as img:
                if max(img.size) >= self.side:
                    return str(path)
                big = enlarge(img.convert("RGB"), self.side)
        except (OSError, ValueError):  # the chat says what is wrong with it elsewhere
            return str(path)
        self._save(big, out)
        return str(out)

    def preview(self, image: np.ndarray) -> Path:
        """A denoising preview (uint8 [H, W, 3]) written enlarged to a new file."""
        out = self.folder / f"preview-{uuid.uuid4().hex[:12]}.png"
        self._save(enlarge(Image.fromarray(image), self.side), out)
        return out

    @staticmethod
    def _save(img: Image.Image, out: Path) -> None:
        tmp = out.with_name(f".{out.stem}-{uuid.uuid4().hex[:8]}.png")
        img.save(tmp, format="PNG")
        os.replace(tmp, out)
