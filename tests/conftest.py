import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    """An engine over a tiny untrained checkpoint: fast, for the mechanics of the app."""
    from nextomni.engine import OmniEngine
    from tests.engine_fixtures import tiny_checkpoint

    return OmniEngine.load(tiny_checkpoint(tmp_path_factory.mktemp("tiny")), device="cpu")
