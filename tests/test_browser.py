"""A person in Chromium with the shipped nano model: asks about an uploaded image, asks for an
image and can see it, sends a spoken question, chooses the reply's kind, tries the world's
sample buttons, stops a reply from the message box, exports, imports and deletes a session,
and replays it. Screenshots for a person to look at go to artifacts/browser/."""

import zipfile

import pytest
from playwright.sync_api import sync_playwright

from tests.server import ROOT, Server

EXAMPLES = ROOT / "ui" / "examples"
SHOTS = ROOT / "artifacts" / "browser"
READABLE = 256  # px: a picture a person can make out (the model draws 64x64)
pytestmark = pytest.mark.slow  # a browser and a server: run with --all (CI)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    s = Server(None, d / "s.db", d / "app.log")  # the default model: checkpoints/nano
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page(server):
    """One browser for the module, so the sessions of one test are there for the next."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_selector("#box textarea", timeout=60_000)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    """The window as a person sees it (a full-page shot misplaces the fixed sidebar)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"))


STATS = ("() => document.querySelector('#turn-stats').innerText.split('\\n')"
         ".filter(l => l.includes('reply ·') || l.includes('stopped')).join(' ')")
BOX_ITEMS = "() => document.querySelectorAll('#box .thumbnail-item').length"


def wait_for_new_stats(page, before: str, timeout: int = 120_000) -> str:
    page.wait_for_function(f"before => {{ const t = ({STATS})(); return t && t !== before; }}",
                           arg=before, timeout=timeout)
    return page.evaluate(STATS)


def box_ready(page) -> None:
    """The last turn is over: its statistics can arrive a moment before the box unlocks."""
    page.wait_for_selector("#box textarea:not([disabled])", timeout=30_000)


def send(page, text, files=()):
    """Send a message (with files; None keeps the box's words) and wait for this turn's
    statistics line."""
    box_ready(page)
    before = page.evaluate(STATS)
    if files:
        page.set_input_files("#box input[type=file]", [str(f) for f in files])
        page.wait_for_function(f"n => ({BOX_ITEMS})() >= n", arg=len(files), timeout=30_000)
    if text is not None:
        page.fill("#box textarea", text)
    page.locator("#box textarea").press("Enter")
    return wait_for_new_stats(page, before)


def reply_with(page, kind: str) -> None:
    page.check(f"#reply-kind input[value='{kind}']")


def last_bot_image_width(page) -> float:
    page.wait_for_function(
        "() => { const bots = document.querySelectorAll('#chatbot .bot');"
        " const img = bots.length && bots[bots.length - 1].querySelector('img');"
        " return img && img.complete && img.naturalWidth > 0; }", timeout=60_000)
    return page.evaluate(
        "() => { const bots = document.querySelectorAll('#chatbot .bot');"
        " return bots[bots.length - 1].querySelector('img').getBoundingClientRect().width; }")


def test_a_person_chats_and_sees_the_pictures(page):
    try:
        # the first file input of the page is the chat's attachment, not an archive import
        assert page.evaluate("() => document.querySelector('input[type=file]')"
                             ".closest('#box') !== null")
        stats = send(page, "generate an image of a small red circle in the top left on a "
                           "white background.")
        assert "image reply" in stats
        assert last_bot_image_width(page) >= READABLE
        stats = send(page, "what do you see?", [EXAMPLES / "scene.png"])
        assert "reply ·" in stats  # shown; its quality is the eval's job
        page.wait_for_function(  # the uploaded 64x64 picture, enlarged like the replies
            f"() => [...document.querySelectorAll('#chatbot .user img')]"
            f".some(i => i.getBoundingClientRect().width >= {READABLE})", timeout=30_000)
        stats = send(page, "what did I say?", [EXAMPLES / "question.wav"])
        assert "reply ·" in stats
        page.wait_for_selector("#chatbot audio", state="attached", timeout=30_000)
    finally:
        shot(page, "1-chat")


def test_the_reply_kind_switch(page):
    ask = "read this aloud: a small green triangle on the left on a white background"
    try:
        reply_with(page, "text")
        assert "text reply" in send(page, ask)  # auto speaks this one
        reply_with(page, "image")
        assert "image reply" in send(page, "what color is the sky?")
        assert last_bot_image_width(page) >= READABLE
        reply_with(page, "speech")
        assert "audio reply" in send(page, "how many shapes are there?")
    finally:
        shot(page, "2-reply-kind")
        reply_with(page, "auto")


def test_try_the_world_buttons(page):
    try:
        box_ready(page)
        seed = int(page.input_value("#world-seed input"))
        # (button, files it puts in the box, how many of them are pictures)
        for kind, files, pictures in (("speech", 2, 1), ("clip", 1, 0), ("scene", 1, 1)):
            page.click(f"#try-{kind}")
            page.wait_for_function(
                "s => document.querySelector('#world-note').innerText.includes('seed ' + s)",
                arg=str(seed), timeout=30_000)
            page.wait_for_function(
                "([n, p]) => document.querySelectorAll('#box .thumbnail-item').length === n"
                " && document.querySelectorAll('#box .thumbnail-item img').length === p",
                arg=[files, pictures], timeout=30_000)
            assert int(page.input_value("#world-seed input")) == seed + 1  # fresh next time
            seed += 1
        question = page.input_value("#box textarea")
        assert question.endswith("?")  # a scene comes with a question about it
        shot(page, "3-try-the-world")
        assert "reply ·" in send(page, None)
        # the same seed gives the same sample back
        box_ready(page)
        page.fill("#world-seed input", str(seed - 1))
        page.locator("#world-seed input").press("Enter")
        page.click("#try-scene")
        page.wait_for_function("q => document.querySelector('#box textarea').value === q",
                               arg=question, timeout=30_000)
    finally:
        shot(page, "3-try-the-world")


def set_slider(page, elem: str, value: str) -> None:
    page.fill(f"#{elem} input[type=range]", value)


def test_stop_inside_the_message_box(page):
    box_ready(page)
    while page.locator("#box .delete-button").count():  # the last sample's picture
        page.locator("#box .delete-button").first.click()
    page.fill("#box textarea", "")
    page.click("#settings")
    set_slider(page, "set-max-tokens", "512")  # a long fixed-length spoken reply
    set_slider(page, "set-confidence", "1")
    page.uncheck("#set-dynamic input")
    reply_with(page, "speech")
    box_ready(page)
    before = page.evaluate(STATS)
    try:
        page.fill("#box textarea", "say: a large blue star in the center on a black background")
        page.locator("#box textarea").press("Enter")
        # a busy page can take seconds to act on a click while the reply streams in
        page.locator("#box .stop-button").click(timeout=60_000)
        assert "stopped" in wait_for_new_stats(page, before, 60_000)
        box_ready(page)
    finally:
        shot(page, "4-stopped")
        reply_with(page, "auto")
        page.check("#set-dynamic input")
        set_slider(page, "set-max-tokens", "128")
        set_slider(page, "set-confidence", "0.9")
        page.click("#settings")  # folded again


def test_export_import_and_delete(page, tmp_path):
    note = "() => document.querySelector('#panel-note').innerText"
    try:
        page.wait_for_selector("#export:not([disabled])", timeout=30_000)
        with page.expect_download(timeout=30_000) as download:
            page.click("#export")
        archive = tmp_path / download.value.suggested_filename
        download.value.save_as(archive)
        with zipfile.ZipFile(archive) as z:
            assert "session.json" in z.namelist()
        before = page.locator("#sessions input").input_value()
        with page.expect_file_chooser(timeout=30_000) as chooser:
            page.click("#import")
        chooser.value.set_files(str(archive))
        page.wait_for_function(f"() => ({note})().includes('Imported.')", timeout=60_000)
        page.wait_for_function("() => document.querySelectorAll('#chatbot .bot').length > 0",
                               timeout=30_000)
        assert page.locator("#sessions input").input_value() == before  # same title, new copy
        shot(page, "5-imported")
        page.click("#manage")  # the folded rename / delete section
        page.click("#delete")
        page.wait_for_selector("#delete-yes", state="visible", timeout=10_000)
        assert "cannot be undone" in page.evaluate(note)
        page.click("#delete-no")
        page.wait_for_selector("#delete-yes", state="hidden", timeout=10_000)
        page.click("#delete")
        page.click("#delete-yes")
        page.wait_for_function(f"() => ({note})().includes('Deleted.')", timeout=30_000)
        assert page.locator("#chatbot .bot").count() == 0
    finally:
        shot(page, "5-sidebar")


def test_replay(page):
    page.locator("#sessions input").click()
    page.locator("ul[role=listbox] li").first.click()
    page.wait_for_function("() => document.querySelectorAll('#chatbot .bot').length > 0",
                           timeout=30_000)
    page.get_by_role("tab", name="Replay").click()
    page.click("#play")
    try:
        page.wait_for_function("() => document.querySelector('#replay-note').innerText"
                               ".includes('played')", timeout=60_000)
        assert page.locator("#replay img").count() >= 1
    finally:
        shot(page, "6-replay")
