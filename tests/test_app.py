"""The app starts from the README's command and serves a page; flags and environment."""

import os

import pytest

from app import auth_pairs, parse_args
from tests.server import Server


def test_flags_and_environment():
    cfg = parse_args([], env={"NEXTOMNI_MODEL": "some/model", "NEXTOMNI_PORT": "9000",
                              "NEXTOMNI_DB": "/tmp/x.db", "NEXTOMNI_AUTH": "ann:pw"})
    assert cfg.model == "some/model" and cfg.port == 9000 and cfg.db == "/tmp/x.db"
    assert auth_pairs(cfg.auth) == [("ann", "pw")]
    assert parse_args(["--port", "7000"], env={"NEXTOMNI_PORT": "9000"}).port == 7000
    assert parse_args([], env={}).model.endswith(os.path.join("checkpoints", "nano"))
    assert parse_args(["--quantization", "4bit"], env={}).quantization == "4bit"


@pytest.mark.slow
def test_app_serves_the_chat_with_the_shipped_model(tmp_path):
    s = Server(None, tmp_path / "s.db", tmp_path / "app.log")
    try:
        assert b"NExT-OMNI" in s.page()
        config = s.page("config")
        assert b"model-status" in config and b"chatbot" in config and b"nano" in config
        assert (tmp_path / "s.db").exists()
    finally:
        s.stop()


@pytest.mark.slow
def test_an_untrained_folder_gets_an_explanation(tmp_path):
    (tmp_path / "empty").mkdir()
    s = Server(tmp_path / "empty", tmp_path / "s.db", tmp_path / "app.log")
    try:
        assert b"not trained yet" in s.page("config")
    finally:
        s.stop()


def test_request_limits_come_from_flags_and_environment():
    import pytest

    cfg = parse_args([], env={"NEXTOMNI_REQUEST_SECONDS": "7.5",
                              "NEXTOMNI_QUEUED_PER_CLIENT": "3"})
    assert (cfg.request_seconds, cfg.queued_per_client) == (7.5, 3)
    assert parse_args([], env={}).request_seconds < 60  # well under a minute by default
    with pytest.raises(SystemExit):
        parse_args(["--request-seconds", "0"], env={})


def test_served_files_are_shown_inline_only_as_media():
    from ui.headers import served_as

    assert served_as("/x/ab/ab12.png") == ("image/png", 'inline; filename="ab12.png"')
    assert served_as("/x/clip.JPEG")[0] == "image/jpeg"
    for name in ("/x/page.html", "/x/d.svg", "/x/s.js", "/x/a.bin", "/x/session.zip", "/x/n"):
        mime, disposition = served_as(name)
        assert mime == "application/octet-stream" and disposition.startswith("attachment")
