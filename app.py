"""Start NExT-OMNI chat:  python app.py [--model PATH_OR_HUB_ID] [--host H] [--port N] [--share]

Every flag has an environment variable for hosts such as Hugging Face Spaces (NEXTOMNI_MODEL,
NEXTOMNI_HOST, NEXTOMNI_PORT, ...). The default model is the embedded checkpoints/nano.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

HERE = Path(__file__).resolve().parent
log = logging.getLogger("nextomni.app")


@dataclass(frozen=True)
class AppConfig:
    model: str = str(HERE / "checkpoints" / "nano")
    quantization: str | None = None
    db: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False


def parse_args(argv: list[str] | None = None, env: dict | None = None) -> AppConfig:
    env = os.environ if env is None else env
    d = AppConfig()
    p = argparse.ArgumentParser(description="NExT-OMNI chat web app")
    p.add_argument("--model", default=env.get("NEXTOMNI_MODEL", d.model),
                   help="checkpoint folder or hub id (env NEXTOMNI_MODEL)")
    p.add_argument("--quantization", choices=["4bit", "8bit"],
                   default=env.get("NEXTOMNI_QUANTIZATION") or None,
                   help="load the backbone quantized (env NEXTOMNI_QUANTIZATION)")
    p.add_argument("--db", default=env.get("NEXTOMNI_DB"),
                   help="session database path (env NEXTOMNI_DB)")
    p.add_argument("--host", default=env.get("NEXTOMNI_HOST", d.host),
                   help="interface to listen on (env NEXTOMNI_HOST)")
    p.add_argument("--port", type=int, default=int(env.get("NEXTOMNI_PORT", d.port)),
                   help="port (env NEXTOMNI_PORT)")
    p.add_argument("--share", action="store_true",
                   default=env.get("NEXTOMNI_SHARE", "") in ("1", "true", "True"),
                   help="also serve on a public gradio.live link (env NEXTOMNI_SHARE)")
    a = p.parse_args(argv)
    return AppConfig(a.model, a.quantization, a.db, a.host, a.port, a.share)


def model_status(cfg: AppConfig) -> str:
    path = Path(cfg.model)
    if path.exists() and not (path / "config.json").exists():
        return (f"**The model is not trained yet**: `{path.name}` holds no `config.json`. "
                "See the README for how to train the nano model.")
    return f"Model: `{cfg.model}`"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = parse_args(argv)
    from ui import build_app

    demo = build_app(model_status(cfg))
    log.info("serving on http://%s:%d", cfg.host, cfg.port)
    demo.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share)


if __name__ == "__main__":
    main()
