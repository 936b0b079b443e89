"""The page layout. What events do lives in ui/handlers.py and ui/page.py; this module only
builds the components and wires them.

Tabs: Chat (multimodal box with Stop inside it, the reply kind, streamed replies, per-turn
statistics, "Try the world" samples, settings, examples), Retrieval (search a gallery by text,
image or audio) and Replay (play a stored session back or re-run it). A sidebar lists the
browser's sessions (resume, export, import; rename and delete folded away). A hidden endpoint
`/chat` serves scripts (see README). The chat tab comes first in the page, so the message
box's attachment input is the page's first file input.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from ui.controls import SettingsForm, reply_control, settings_controls
from ui.handlers import Handlers
from ui.page import PageEvents, with_stop_button
from ui.world import BUTTONS, TryWorld

TITLE = "NExT-OMNI chat"
INTRO = ("Any-to-any chat driven by discrete flow matching: text, images, audio and video in; "
         "text, images and speech out. The default nano model knows OmniWorld: coloured shapes "
         "on a 3x3 grid, spoken sentences about them, and moving shapes.")
EXAMPLES = Path(__file__).resolve().parent / "examples"
GPU = "model"  # one concurrency group for everything that runs the model
PRIVATE = {"api_visibility": "private"}  # page events; scripts use /chat


def examples() -> list[dict]:
    e = EXAMPLES
    return [
        {"text": "generate an image of a small red circle in the top left on a white background.",
         "files": []},
        {"text": "what do you see?", "files": [str(e / "scene.png")]},
        {"text": "how many blue shapes are there?", "files": [str(e / "scene.png")]},
        {"text": "what did I say?", "files": [str(e / "question.wav")]},
        {"text": "which way do they move?", "files": [str(e / "motion.mp4")]},
        {"text": "read this aloud: a small green triangle on the left on a white background",
         "files": []},
    ]


def build_app(status: str, handlers: Handlers | None = None, gpu=lambda f: f,
              secret: str | None = None, samples=None) -> gr.Blocks:
    """The app; `status` says which model is loaded, or why none is. `gpu` wraps the
    functions that run the model (spaces.GPU on ZeroGPU hardware); `secret` keeps the
    browser's session token readable across server restarts; `samples` makes the "Try the
    world" inputs (`samples(kind, seed)`; no buttons without it)."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        gr.Markdown(status, elem_id="model-status")
        if handlers is None:
            return demo
        c = SimpleNamespace(token=gr.BrowserState(None, storage_key="nextomni-owner",
                                                  secret=secret),
                            owner=gr.State(""), session=gr.State(None), message=gr.State(None),
                            settings=gr.State({}))
        with gr.Tabs():
            with gr.Tab("Chat"):
                _chat_tab(c, samples)
            with gr.Tab("Retrieval"):
                _retrieval_tab(c)
            with gr.Tab("Replay"):
                _replay_tab(c)
        with gr.Sidebar(label="Sessions", open=True):
            _sidebar(c)
        with gr.Group(visible=False):  # the hidden endpoint for scripts: one turn in, reply out
            c.api_in = [gr.Textbox(), gr.File(type="filepath"), gr.Textbox(), gr.Textbox(),
                        gr.Textbox()]
            c.api_out = [gr.Textbox(), gr.File(file_count="multiple"), gr.Textbox()]
            c.api_btn = gr.Button()
        _wire(demo, c, PageEvents(handlers, c.form), handlers, gpu)
        if samples is not None:
            _wire_world(c, TryWorld(samples))
    return demo


def _chat_tab(c, samples) -> None:
    c.chatbot = gr.Chatbot(height=560, elem_id="chatbot", label="chat")
    c.box = gr.MultimodalTextbox(
        file_count="multiple", file_types=["image", "audio", "video"],
        sources=["upload", "microphone"], placeholder="Ask, or attach an image, audio or "
        "video...", elem_id="box", show_label=False, stop_btn=False)
    with gr.Row(equal_height=True):
        reply = reply_control()
        c.stats = gr.Markdown(elem_id="turn-stats")
    # speech plays here block by block while the reply is made (after the box: the chat's
    # attachment input stays the page's first file input)
    c.speech = gr.Audio(streaming=True, autoplay=True, interactive=False, elem_id="speech-stream",
                        label="speech, as it is made")
    if samples is not None:
        with gr.Row(equal_height=True, elem_id="try-world"):
            gr.Markdown("**Try the world:** a fresh OmniWorld input in the box", min_height=0)
            c.world_buttons = {kind: gr.Button(label, size="sm", elem_id=f"try-{kind}")
                               for kind, label in BUTTONS}
            c.world_seed = gr.Number(getattr(samples, "first_seed", 0), label="world seed",
                                     precision=0, minimum=0, elem_id="world-seed",
                                     min_width=120, scale=0)
        c.world_note = gr.Markdown(elem_id="world-note")
    with gr.Accordion("Settings", open=False, elem_id="settings"):
        c.form = SettingsForm({"reply": reply, **settings_controls()})
    gr.Examples(examples(), inputs=c.box, label="examples (nano model)")


def _retrieval_tab(c) -> None:
    with gr.Row():
        c.q_text = gr.Textbox(label="describe what to find", elem_id="q-text")
        c.q_file = gr.File(label="...or search by an image or audio", type="filepath",
                           file_types=["image", "audio"])
    c.uploads = gr.File(label="add images to the gallery", file_count="multiple",
                        type="filepath", file_types=["image"])
    c.find = gr.Button("Search", elem_id="search")
    c.found_note = gr.Markdown()
    c.found = gr.Gallery(label="best matches first", columns=8, height=260)


def _replay_tab(c) -> None:
    with gr.Row():
        c.play = gr.Button("Play back the session", elem_id="play")
        c.rerun = gr.Button("Re-run and compare", elem_id="rerun")
    c.replay_note = gr.Markdown(elem_id="replay-note")
    c.replay_chat = gr.Chatbot(height=440, elem_id="replay", label="replay")


def _sidebar(c) -> None:
    c.sessions = gr.Dropdown([], label="your sessions", interactive=True, elem_id="sessions")
    c.new_btn = gr.Button("New chat", elem_id="new-chat")
    with gr.Row():
        c.export = gr.DownloadButton("Export", size="sm", interactive=False, elem_id="export")
        c.import_ = gr.UploadButton("Import", size="sm", file_types=[".zip"], type="filepath",
                                    elem_id="import")
    with gr.Accordion("Rename or delete", open=False, elem_id="manage"):
        c.title = gr.Textbox(label="rename to", max_lines=1, elem_id="rename-to")
        with gr.Row():
            c.rename_btn = gr.Button("Rename", size="sm", elem_id="rename")
            c.delete_btn = gr.Button("Delete…", size="sm", elem_id="delete")
        with gr.Row(visible=False, elem_id="confirm-delete") as c.confirm:
            c.delete_yes = gr.Button("Yes, delete", size="sm", variant="stop",
                                     elem_id="delete-yes")
            c.delete_no = gr.Button("Keep", size="sm", elem_id="delete-no")
    c.panel_note = gr.Markdown(elem_id="panel-note")


def _wire(demo, c, ev: PageEvents, h: Handlers, gpu) -> None:
    listed = [c.sessions, c.export]  # the session list and the export button move together
    demo.load(ev.start, [c.token], [c.token, c.owner, c.sessions], **PRIVATE)
    quiet = {"show_progress": "hidden", **PRIVATE}  # no spinner over the box or the sidebar
    begin = c.box.submit(ev.begin, [c.box, *c.form.controls], [c.box, c.message, c.settings],
                         **quiet)
    reply = begin.then(with_stop_button(gpu(h.chat_speaking)),
                       [c.message, c.chatbot, c.owner, c.session, c.settings],
                       [c.chatbot, c.session, c.stats, c.speech, c.box], concurrency_id=GPU,
                       concurrency_limit=1, api_name="page_chat", show_progress="minimal",
                       show_progress_on=c.chatbot, **PRIVATE)
    reply.then(ev.end, None, c.box, **quiet).then(ev.refresh, [c.owner, c.session], listed,
                                                   **quiet)
    # the cancel runs in the browser at once (a server event reading the session would wait
    # for the reply, which writes the session, to end); then the turn is marked stopped
    stop = c.box.stop(None, None, None, cancels=[reply], **quiet)
    stop.then(ev.stopped, [c.session, c.owner], [c.box, c.stats, c.chatbot, *listed], **quiet)
    c.sessions.input(ev.resume, [c.sessions, c.owner], [c.chatbot, c.session, c.stats, c.export],
                     **PRIVATE)
    c.new_btn.click(ev.new_chat, None, [c.chatbot, c.session, c.stats, *listed], **PRIVATE)
    c.rename_btn.click(ev.rename, [c.session, c.title, c.owner], [c.panel_note, *listed],
                       **PRIVATE)
    c.delete_btn.click(ev.ask_delete, [c.session, c.owner], [c.confirm, c.panel_note], **PRIVATE)
    c.delete_yes.click(ev.delete, [c.session, c.owner],
                       [c.panel_note, *listed, c.chatbot, c.session, c.confirm], **PRIVATE)
    c.delete_no.click(ev.keep, None, [c.confirm, c.panel_note], **PRIVATE)
    c.import_.upload(ev.imported, [c.import_, c.owner], [c.panel_note, *listed, c.chatbot,
                                                         c.session], **PRIVATE)
    c.find.click(gpu(h.search), [c.q_text, c.q_file, c.uploads], [c.found, c.found_note],
                 concurrency_id=GPU, **PRIVATE)
    c.play.click(h.play, [c.session, c.owner], [c.replay_chat, c.replay_note], **PRIVATE)
    c.rerun.click(gpu(h.rerun), [c.session, c.owner], c.replay_note, concurrency_id=GPU,
                  **PRIVATE)
    c.api_btn.click(gpu(h.api_chat), c.api_in, c.api_out, api_name="chat", concurrency_id=GPU)


def _wire_world(c, world: TryWorld) -> None:
    for kind, button in c.world_buttons.items():
        button.click(world.handler(kind), c.world_seed, [c.box, c.world_note, c.world_seed],
                     **PRIVATE)
