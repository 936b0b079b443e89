"""Start NExT-OMNI chat:

    python app.py [--model PATH_OR_HUB_ID] [--quantization 4bit|8bit] [--baseline PATH]
                  [--db PATH] [--host H] [--port N] [--share]
                  [--request-seconds S] [--queued-per-client N]

Every flag has an environment variable for hosts such as Hugging Face Spaces (NEXTOMNI_MODEL,
NEXTOMNI_DB, ...). Defaults: the embedded checkpoints/nano (and checkpoints/nano-ar as the AR
baseline when present), a session database under /data when it exists (Spaces storage) or
the user's data folder. NEXTOMNI_AUTH="user:password,user2:password2" asks visitors to log
in; each user then sees their own sessions on any browser.

NEXTOMNI_SECRET is not a secret: it is the key with which the browser itself scrambles its
stored session token, so it is sent to every visitor. It only keeps tokens readable across
restarts; never reuse a password or a real secret key there. See docs/threat-model.md for who
can reach what, and what a host must set.
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
VERSION = "0.1.0"


@dataclass(frozen=True)
class AppConfig:
    model: str = str(HERE / "checkpoints" / "nano")
    quantization: str | None = None
    baseline: str | None = None
    db: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: str | None = None
    request_seconds: float = 20.0  # wall time of one request to the model
    queued_per_client: int = 2     # requests one client may have waiting or running


def parse_args(argv: list[str] | None = None, env: dict | None = None) -> AppConfig:
    env = os.environ if env is None else env
    d = AppConfig()
    p = argparse.ArgumentParser(description="NExT-OMNI chat web app")
    p.add_argument("--model", default=env.get("NEXTOMNI_MODEL", d.model),
                   help="checkpoint folder or hub id (env NEXTOMNI_MODEL)")
    p.add_argument("--quantization", choices=["4bit", "8bit"],
                   default=env.get("NEXTOMNI_QUANTIZATION") or None,
                   help="load the backbone quantized (env NEXTOMNI_QUANTIZATION)")
    p.add_argument("--baseline", default=env.get("NEXTOMNI_BASELINE"),
                   help="autoregressive baseline checkpoint for the AR mode (env "
                        "NEXTOMNI_BASELINE; default checkpoints/nano-ar when present)")
    p.add_argument("--db", default=env.get("NEXTOMNI_DB"),
                   help="session database path (env NEXTOMNI_DB)")
    p.add_argument("--host", default=env.get("NEXTOMNI_HOST", d.host),
                   help="interface to listen on (env NEXTOMNI_HOST)")
    p.add_argument("--port", type=int, default=int(env.get("NEXTOMNI_PORT", d.port)),
                   help="port (env NEXTOMNI_PORT)")
    p.add_argument("--share", action="store_true",
                   default=env.get("NEXTOMNI_SHARE", "") in ("1", "true", "True"),
                   help="also serve on a public gradio.live link (env NEXTOMNI_SHARE)")
    p.add_argument("--request-seconds", type=float,
                   default=float(env.get("NEXTOMNI_REQUEST_SECONDS", d.request_seconds)),
                   help="stop a reply (or a re-run) after this many seconds (env "
                        "NEXTOMNI_REQUEST_SECONDS; default %(default)s)")
    p.add_argument("--queued-per-client", type=int,
                   default=int(env.get("NEXTOMNI_QUEUED_PER_CLIENT", d.queued_per_client)),
                   help="requests one visitor may have waiting or running at once (env "
                        "NEXTOMNI_QUEUED_PER_CLIENT; default %(default)s)")
    p.epilog = ("NEXTOMNI_AUTH=user:password,... asks visitors to log in. NEXTOMNI_SECRET is "
                "sent to every visitor (the browser scrambles its stored token with it): it is "
                "not a secret, never reuse a real one there.")
    a = p.parse_args(argv)
    if a.request_seconds <= 0 or a.queued_per_client < 1:
        p.error("--request-seconds must be above 0 and --queued-per-client at least 1")
    return AppConfig(a.model, a.quantization, a.baseline, a.db, a.host, a.port, a.share,
                     env.get("NEXTOMNI_AUTH") or None, a.request_seconds, a.queued_per_client)


def model_status(cfg: AppConfig) -> str:
    path = Path(cfg.model)
    if path.exists() and not (path / "config.json").exists():
        return (f"**The model is not trained yet**: `{path.name}` holds no `config.json`. "
                "See the README for how to train the nano model.")
    return f"Model: `{Path(cfg.model).name if path.exists() else cfg.model}`" + \
        (f" ({cfg.quantization})" if cfg.quantization else "")


def auth_pairs(spec: str | None) -> list[tuple[str, str]] | None:
    if not spec:
        return None
    pairs = [tuple(item.split(":", 1)) for item in spec.split(",") if ":" in item]
    if not pairs:
        raise SystemExit("NEXTOMNI_AUTH must look like user:password[,user2:password2]")
    return pairs


def gpu_wrapper():
    """spaces.GPU on ZeroGPU hardware (the GPU is attached per call), otherwise nothing."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return lambda f: f
    import spaces

    return spaces.GPU(duration=120)


def browser_secret(db: Path) -> str:
    """The key the browser scrambles its stored session token with (gr.BrowserState does it
    on the client, so every visitor receives this key: it hides nothing from them, it only
    keeps a token readable across restarts). From NEXTOMNI_SECRET, else kept in a file beside
    the database."""
    if os.environ.get("NEXTOMNI_SECRET"):
        log.warning("NEXTOMNI_SECRET is sent to every visitor's browser: it is not a secret, "
                    "so it must not be a password or key used anywhere else")
        return os.environ["NEXTOMNI_SECRET"]
    path = Path(db).with_name(Path(db).name + ".secret")
    if not path.exists():
        import secrets

        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def gallery(n: int = 24) -> list:
    """Built-in retrieval gallery: held-out OmniWorld scenes with their descriptions."""
    from nextomni.data.splits import heldout
    from nextomni.data.text import canonical_caption
    from nextomni.data.world import random_scene, render

    scenes = [random_scene(s) for s in heldout(n)]
    return [(canonical_caption(s), render(s)) for s in scenes]


def build(cfg: AppConfig):
    """(demo, launch keyword arguments)."""
    from sessions.store import SessionStore, default_db_path
    from ui import build_app

    status = model_status(cfg)
    if "not trained" in status:
        return build_app(status), {}
    # the database first: a damaged one stops the start before the model is loaded
    store = SessionStore(cfg.db or default_db_path(), app_version=VERSION)
    from starlette.middleware import Middleware

    from nextomni.engine import OmniEngine
    from ui.app import GPU
    from ui.handlers import Handlers
    from ui.headers import FileHeaders
    from ui.limits import ClientQueueLimit
    from ui.turns import ChatRunner

    baseline = cfg.baseline
    if baseline is None and (HERE / "checkpoints" / "nano-ar" / "config.json").exists() \
            and Path(cfg.model) == HERE / "checkpoints" / "nano":
        baseline = str(HERE / "checkpoints" / "nano-ar")
    engine = OmniEngine.load(cfg.model, quantization=cfg.quantization, baseline=baseline)
    engine.warm_up()  # the first visitor's first speech reply need not compile the decoders
    if store.recovered:
        log.warning("marked %d turn(s) left running by a stopped server as failed",
                    store.recovered)
    runner = ChatRunner(engine, store, cfg.model, max_seconds=cfg.request_seconds)
    handlers = Handlers(runner, store, gallery())
    from nextomni.data.samples import WorldSamples  # the "Try the world" inputs

    demo = build_app(status, handlers, gpu_wrapper(), browser_secret(store.path),
                     samples=WorldSamples())
    demo.queue(default_concurrency_limit=1, max_size=64)
    ClientQueueLimit(cfg.queued_per_client, GPU).install(demo)
    # the media folder must be allowed for Gradio to show stored media; FileHeaders decides
    # how any served file is shown (inline only as an allow-listed media type, nosniff)
    return demo, {"allowed_paths": [str(store.media), str(handlers.previews)],
                  "auth": auth_pairs(cfg.auth),
                  "app_kwargs": {"middleware": [Middleware(FileHeaders)]}}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = parse_args(argv)
    from sessions.store import StoreError

    try:
        demo, kwargs = build(cfg)
    except StoreError as e:
        raise SystemExit(f"error: {e}") from None
    log.info("serving on http://%s:%d", cfg.host, cfg.port)
    demo.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, **kwargs)


if __name__ == "__main__":
    main()
