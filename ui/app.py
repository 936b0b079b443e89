"""The page layout. What events do lives in ui/handlers.py; this module only wires them.

Tabs: Chat (multimodal box, streamed replies, Stop, per-turn statistics, settings, examples),
Retrieval (search a gallery by text, image or audio) and Replay (play a stored session back
or re-run it). A sidebar lists the browser's sessions (resume, rename, delete, export,
import). A hidden endpoint `/chat` serves scripts (see README).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from nextomni.engine.settings import Settings
from ui.handlers import SETTING_NAMES, Handlers

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


def settings_controls() -> list:
    d = Settings()
    return [
        gr.Number(d.seed, label="seed", precision=0, minimum=0),
        gr.Slider(1, 64, d.steps, step=1, label="steps per block"),
        gr.Number(0, label="block size (0: as trained)", precision=0, minimum=0),
        gr.Slider(0, 5, d.guidance, step=0.25, label="guidance (images)"),
        gr.Slider(0, 5, d.speech_guidance, step=0.25, label="guidance (speech)"),
        gr.Slider(8, 512, d.max_tokens, step=8, label="max reply tokens"),
        gr.Slider(0, 2, d.temperature, step=0.05, label="temperature (0: greedy)"),
        gr.Slider(0, 1, d.confidence, step=0.01, label="stop a block at confidence"),
        gr.Checkbox(d.cache, label="key/value cache"),
        gr.Checkbox(d.dynamic, label="dynamic length"),
        gr.Radio(["DFM", "AR baseline"], value="DFM", label="decoding"),
    ]


def build_app(status: str, handlers: Handlers | None = None, gpu=lambda f: f,
              secret: str | None = None) -> gr.Blocks:
    """The app; `status` says which model is loaded, or why none is. `gpu` wraps the
    functions that run the model (spaces.GPU on ZeroGPU hardware); `secret` keeps the
    browser's session token readable across server restarts."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        gr.Markdown(status, elem_id="model-status")
        if handlers is None:
            return demo
        h = handlers
        token = gr.BrowserState(None, storage_key="nextomni-owner", secret=secret)
        owner = gr.State("")
        session = gr.State(None)

        with gr.Sidebar(label="Sessions", open=True):
            sessions = gr.Dropdown([], label="your sessions", interactive=True,
                                   elem_id="sessions")
            new_btn = gr.Button("New chat", elem_id="new-chat")
            title = gr.Textbox(label="rename to", max_lines=1)
            with gr.Row():
                rename_btn = gr.Button("Rename", size="sm")
                delete_btn = gr.Button("Delete", size="sm", variant="stop")
            export_btn = gr.Button("Export", size="sm")
            export_file = gr.File(label="archive", interactive=False)
            import_file = gr.File(label="import an archive", file_types=[".zip"], type="filepath")
            panel_note = gr.Markdown()

        with gr.Tabs():
            with gr.Tab("Chat"):
                chatbot = gr.Chatbot(height=520, elem_id="chatbot", label="chat")
                box = gr.MultimodalTextbox(
                    file_count="multiple", file_types=["image", "audio", "video"],
                    sources=["upload", "microphone"], placeholder="Ask, or attach an image, "
                    "audio or video...", elem_id="box", show_label=False)
                with gr.Row():
                    stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=0)
                    stats = gr.Markdown(elem_id="turn-stats")
                with gr.Accordion("Settings", open=False):
                    controls = settings_controls()
                gr.Examples(examples(), inputs=box, label="examples (nano model)")
            with gr.Tab("Retrieval"):
                with gr.Row():
                    q_text = gr.Textbox(label="describe what to find", elem_id="q-text")
                    q_file = gr.File(label="...or search by an image or audio",
                                     type="filepath", file_types=["image", "audio"])
                uploads = gr.File(label="add images to the gallery", file_count="multiple",
                                  type="filepath", file_types=["image"])
                find = gr.Button("Search", elem_id="search")
                found_note = gr.Markdown()
                found = gr.Gallery(label="best matches first", columns=8, height=260)
            with gr.Tab("Replay"):
                with gr.Row():
                    play = gr.Button("Play back the session", elem_id="play")
                    rerun = gr.Button("Re-run and compare", elem_id="rerun")
                replay_note = gr.Markdown(elem_id="replay-note")
                replay_chat = gr.Chatbot(height=440, elem_id="replay", label="replay")

        # hidden endpoint for scripts: one turn in, reply out
        with gr.Group(visible=False):
            api_text, api_file = gr.Textbox(), gr.File(type="filepath")
            api_session, api_token, api_settings = gr.Textbox(), gr.Textbox(), gr.Textbox()
            api_reply, api_media, api_session_out = gr.Textbox(), gr.File(file_count="multiple"), \
                gr.Textbox()
            api_btn = gr.Button()

        # ---------------------------------------------------------------- wiring
        def start(tok, request: gr.Request):
            tok = h.new_token(tok)
            who = h.owner(tok, getattr(request, "username", None))
            return tok, who, gr.Dropdown(choices=h.session_choices(who), value=None)

        demo.load(start, [token], [token, owner, sessions], **PRIVATE)

        def refresh(who, sid):
            return gr.Dropdown(choices=h.session_choices(who), value=sid)

        lock = box.submit(lambda: gr.MultimodalTextbox(interactive=False), None, box, **PRIVATE)
        reply = lock.then(gpu(h.chat), [box, chatbot, owner, session, *controls],
                          [chatbot, session, stats], concurrency_id=GPU, concurrency_limit=1,
                          api_name="page_chat", **PRIVATE)
        reply.then(lambda: gr.MultimodalTextbox(value=None, interactive=True), None, box,
                   **PRIVATE).then(refresh, [owner, session], sessions, **PRIVATE)

        def stopped(sid, who):
            h.stop(sid)
            return (gr.MultimodalTextbox(value=None, interactive=True), "stopped",
                    h.resume(sid, who), refresh(who, sid))

        stop.click(stopped, [session, owner], [box, stats, chatbot, sessions], cancels=[reply],
                   **PRIVATE)

        def resume(sid, who):
            return h.resume(sid, who), sid, ""

        sessions.input(resume, [sessions, owner], [chatbot, session, stats], **PRIVATE)
        new_btn.click(lambda: ([], None, "", gr.Dropdown(value=None)), None,
                      [chatbot, session, stats, sessions], **PRIVATE)

        def rename(sid, new_title, who):
            return h.rename(sid, new_title, who), refresh(who, sid)

        rename_btn.click(rename, [session, title, owner], [panel_note, sessions], **PRIVATE)

        def delete(sid, who):
            return h.delete(sid, who), refresh(who, None), [], None

        delete_btn.click(delete, [session, owner], [panel_note, sessions, chatbot, session],
                         **PRIVATE)
        export_btn.click(h.export, [session, owner], export_file, **PRIVATE)

        def imported(path, who):
            try:
                sid = h.import_(path, who)
            except ValueError as e:
                return f"⚠ {e}", refresh(who, None), gr.update(), gr.update()
            return "Imported.", refresh(who, sid), h.resume(sid, who), sid

        import_file.upload(imported, [import_file, owner], [panel_note, sessions, chatbot, session],
                           **PRIVATE)
        find.click(gpu(h.search), [q_text, q_file, uploads], [found, found_note],
                   concurrency_id=GPU, **PRIVATE)
        play.click(h.play, [session, owner], [replay_chat, replay_note], **PRIVATE)
        rerun.click(gpu(h.rerun), [session, owner], replay_note, concurrency_id=GPU, **PRIVATE)
        api_btn.click(gpu(h.api_chat), [api_text, api_file, api_session, api_token, api_settings],
                      [api_reply, api_media, api_session_out], api_name="chat",
                      concurrency_id=GPU)
        assert len(controls) == len(SETTING_NAMES)  # handlers read them in this order
    return demo
