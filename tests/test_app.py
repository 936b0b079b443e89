"""The app starts from the README's command and serves a page."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app import parse_args

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_flags_and_environment():
    cfg = parse_args([], env={"NEXTOMNI_MODEL": "some/model", "NEXTOMNI_PORT": "9000"})
    assert cfg.model == "some/model" and cfg.port == 9000
    assert parse_args(["--port", "7000"], env={"NEXTOMNI_PORT": "9000"}).port == 7000
    assert parse_args([], env={}).model.endswith(os.path.join("checkpoints", "nano"))


def test_app_serves_a_page(tmp_path):
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NEXTOMNI_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.time() + 90, None
        while time.time() < deadline and page is None:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read())
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            except OSError:
                time.sleep(0.5)
        assert page is not None, "no page within 90 s"
        assert b"NExT-OMNI" in page
        config = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).read()
        assert b"model-status" in config
    finally:
        proc.terminate()
        proc.wait(timeout=30)
