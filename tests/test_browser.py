"""A person in Chromium: asks about an uploaded image, asks for an image and sees it, sends a
spoken question, replays the session. Uses the shipped nano model; leaves a screenshot in
artifacts/."""

import pytest
from playwright.sync_api import sync_playwright

from tests.server import ROOT, Server

EXAMPLES = ROOT / "ui" / "examples"
ARTIFACTS = ROOT / "artifacts"
pytestmark = pytest.mark.slow  # a browser and a server: run with --all (CI)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    s = Server(None, d / "s.db", d / "app.log")  # the default model: checkpoints/nano
    yield s
    s.stop()


STATS = ("() => document.querySelector('#turn-stats').innerText.split('\\n')"
         ".filter(l => l.includes('reply ·')).join(' ')")


def send(page, text, files=()):
    """Send a message (with files) and wait for this turn's statistics line."""
    before = page.evaluate(STATS)
    if files:
        page.set_input_files("#box input[type=file]", [str(f) for f in files])
        page.wait_for_function(
            "n => document.querySelectorAll('#box .thumbnail-item, #box .thumbnail-image, "
            "#box img, #box audio, #box .file-preview').length >= n", arg=len(files),
            timeout=30_000)
    page.fill("#box textarea", text)
    page.keyboard.press("Enter")
    page.wait_for_function(f"before => {{ const t = ({STATS})(); return t && t !== before; }}",
                           arg=before, timeout=120_000)
    return page.evaluate(STATS)


def test_a_person_chats_and_replays(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(server.url, wait_until="domcontentloaded")
            page.wait_for_selector("#box textarea", timeout=60_000)
            stats = send(page, "generate an image of a small red circle in the top left on a "
                                "white background.")
            assert "image reply" in stats
            page.wait_for_function(
                "() => { const bots = document.querySelectorAll('#chatbot .bot');"
                " const last = bots[bots.length - 1];"
                " return last && last.querySelector('img') !== null; }", timeout=60_000)
            stats = send(page, "what do you see?", [EXAMPLES / "scene.png"])
            assert "reply ·" in stats  # shown; its quality is the eval's job
            page.wait_for_function(
                "() => document.querySelectorAll('#chatbot .bot').length >= 1", timeout=10_000)
            # the uploaded picture (the chat may render it a moment after the statistics)
            page.wait_for_selector("#chatbot img", state="attached", timeout=30_000)
            stats = send(page, "what did I say?", [EXAMPLES / "question.wav"])
            assert "reply ·" in stats
            page.wait_for_selector("#chatbot audio", state="attached", timeout=30_000)
            page.get_by_role("tab", name="Replay").click()
            page.click("#play")
            page.wait_for_function(
                "() => document.querySelector('#replay-note').innerText.includes('played 6 turns')",
                timeout=60_000)
            assert page.locator("#replay img").count() >= 1
        finally:
            page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
            browser.close()
