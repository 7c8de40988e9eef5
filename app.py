"""The Streamlit page: widgets, options, calls into `asr`, and results. No model or audio logic here.

Transcription runs in a background job (`asr.TranscriptionJob`), so the page stays responsive: a fragment
polls the job once a second to draw progress and the segments that are done (a job waiting for its turn every
two seconds), and Cancel stops it within a second or two. Each poll reruns only its fragment and draws a
handful of elements, and Streamlit's full garbage collection after every rerun is off (`.streamlit/config.toml`,
`launchers/start.py`): it held the GIL long enough to stall the run. Even so a poll costs the server's event
loop tens of milliseconds of GIL on a busy machine (py-spy, docs/performance.md), hence the intervals. Results live
in `st.session_state`, one card per input in the inputs' order; a new run of an input replaces its card, but
an error or a cancel never replaces a finished result. While there are results or a run, the browser asks
before the page is left or reloaded (`leave_guard`), and a reload gets the results back (`page_restore`). A job
stops by itself when its page has been disconnected for a few seconds (a closed tab), see `page_is_connected`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

import asr
import live_page
import page_restore
from page_speakers import (
    speaker_cell,
    speaker_column,
    speaker_panels,
    speakers_choice,
    speakers_made_with,
    with_speaker_edits,
)
from page_table import (
    forget_table,
    kept_edits,
    note,
    player,
    row_height,
    table_columns,
    table_edits,
    table_key,
)

MODEL = os.environ.get(asr.MODEL_ENV) or asr.DEFAULT_MODEL  # env read once, here
ALIGNER = os.environ.get(asr.ALIGNER_ENV) or asr.DEFAULT_ALIGNER
DEVICE = os.environ.get("QWEN3_ASR_DEVICE", "auto")
# For the uploader's label only: it takes any file, so that the decoder, not the browser, decides what it can read,
# and a file it cannot read gets a message in plain words under its name (the browser's refusal shows on hover).
UPLOAD_LABEL = "Recordings or videos ({})".format(
    ", ".join(sorted(s.removeprefix(".").upper() for s in asr.AUDIO_SUFFIXES))
)
AUTO = "Auto-detect"
OTHER_MIRROR = "Another mirror"
# Material icons, not emoji: they render everywhere, emoji show as empty boxes where no emoji font is installed.
CHECKED, WARNING = ":green[:material/check_circle:]", ":orange[:material/warning:]"
LANGUAGE_CHOICES = [AUTO, *sorted(asr.LANGUAGES.values())]
MODEL_CHOICES = {  # repo id -> (label, what to know about it); a folder of the user's own is offered beside them
    asr.DEFAULT_MODEL: ("Qwen3-ASR-0.6B", f"{asr.MODEL_SIZES[asr.DEFAULT_MODEL]} · faster"),
    asr.LARGE_MODEL: ("Qwen3-ASR-1.7B", f"{asr.MODEL_SIZES[asr.LARGE_MODEL]} · more accurate, slower"),
}
CHINESE_SCRIPT_CHOICES = {  # label -> TranscribeOptions.chinese_script
    "As the model writes them": "auto",
    "Simplified (简体)": "simplified",
    "Traditional, Taiwan (繁體)": "traditional",
    "Traditional, Hong Kong (繁體)": "traditional-hk",
}
# The uploader writes sizes its own way ("31.7KB" on each file's chip, "2GB per file" in the drop zone); the facts
# line under each file gives its size as every other size on the page is written, so Streamlit's copies are hidden.
PAGE_STYLE = """<style>
[data-testid='stFileChipName'] + *, [data-testid='stFileUploaderDropzoneInstructions'] { display: none; }
</style>"""
# Asks before the page is left or reloaded while `window.__transcriberGuard` is true (results or a run would be
# lost); the listener is added once per page load and reads the flag that each run of the script sets.
LEAVE_GUARD_SCRIPT = """<script>
window.__transcriberGuard = %s;
if (!window.__transcriberGuardAdded) {
  window.__transcriberGuardAdded = true;
  window.addEventListener("beforeunload", (event) => {
    if (window.__transcriberGuard) { event.preventDefault(); event.returnValue = ""; }
  });
}
</script>"""


@dataclasses.dataclass(frozen=True)
class Card:
    """One input's latest result on the page, and what made it."""

    id: int  # keys the card's widgets (edits, player): a new result starts without the old one's edits
    result: asr.FileResult
    made_with: tuple[str, ...]  # e.g. ("Qwen3-ASR-0.6B", "English", "word timestamps")
    kept_because: str | None = None  # why a later run of this input did not replace this result


state = st.session_state


def start_run() -> None:
    """What every script run does first (not at import: Streamlit's server imports this file for `app`)."""
    st.set_page_config(page_title="Transcriber · private speech-to-text", page_icon=":material/mic:", layout="wide")
    asr.netwatch.start_watching()
    page_restore.restore()  # a reloaded page gets its results back
    state.setdefault("model", MODEL)
    state.setdefault("aligner", ALIGNER)
    state.setdefault("model_folders", [] if asr.is_repo_id(MODEL) else [MODEL])  # offered beside the two repos
    state.setdefault("cards", {})  # input key (name and content digest, see current_inputs) -> Card
    state.setdefault("input_nonce", 0)  # bumped by Clear: new widget keys empty the inputs
    state.setdefault("recording_numbers", {})  # recording's file_id -> its number in this session: "Recording 1", ...
    state.setdefault("next_result_id", 0)


@st.cache_resource(show_spinner=False)
def load_engine(model: str, device: str) -> asr.QwenEngine:
    """One engine per model for all sessions; errors are not cached, so a retry after a download works."""
    return asr.QwenEngine.load(model, device=device)


@st.cache_resource(show_spinner=False)
def load_aligner(model: str, device: str) -> asr.QwenAligner:
    """One forced aligner for all sessions, loaded the first time someone turns word timestamps on."""
    return asr.QwenAligner.load(model, device=device)


@st.cache_data(show_spinner=False, max_entries=32)
def describe(file_id: str, _data: bytes) -> tuple[str, dict[str, list[float]]]:
    """Facts line and a 400-point loudness envelope over seconds (cached per upload, not per rerun)."""
    facts = asr.overview(_data, points=400)
    return facts.source.summary(), {"seconds": list(facts.seconds), "level": list(facts.levels)}


@st.cache_data(show_spinner=False, max_entries=64)
def fingerprint(file_id: str, _data: bytes) -> str:
    """A digest of an input's bytes (once per upload): the same recording added again is the same input."""
    return hashlib.blake2b(_data, digest_size=16).hexdigest()


def sidebar(engine: asr.QwenEngine | None) -> tuple[asr.TranscribeOptions, asr.QwenAligner | None]:
    """Model facts, language, context and word-timestamp choices, and the live privacy checks.

    Returns the options and the forced aligner (None when word timestamps are off or it is missing).
    """
    with st.sidebar:
        st.header("Model")
        model_choice()
        if engine is None:
            st.caption(f"{state.model} · not loaded")
        else:
            where = "" if engine.info.folder == engine.info.name else f"  \n{engine.info.folder}"
            st.caption(f"**{engine.info.name}**{where}")
            st.caption(f"{engine.info.device} · {engine.info.dtype} · loaded in {engine.info.load_s:.1f} s")
            st.caption(engine.memory_summary())
        st.header("Language")
        language = st.selectbox("Spoken language", LANGUAGE_CHOICES, key="language")
        st.caption("Auto-detect and Chinese/Cantonese also recognise the 22 Chinese dialects.")
        context = st.text_area(
            "Names and terms to expect",
            key="context",
            placeholder="e.g. Stella Nakamura, Kubernetes, Q3 budget",
            help="Passed to the model as context, so it spells them right.",
        )
        script = st.selectbox(
            "Chinese characters",
            list(CHINESE_SCRIPT_CHOICES),
            key="chinese_script",
            help="For Chinese and Cantonese: keep the model's characters, or convert them (OpenCC).",
        )
        aligner = word_timestamps_choice()
        speakers = speakers_choice()
        privacy_panel()
        leave_guard()  # here, not in the main area, where its (empty) element would add a gap
    decode = asr.DecodeOptions(language=None if language == AUTO else language, context=context.strip())
    script_choice = CHINESE_SCRIPT_CHOICES[script]
    return asr.TranscribeOptions(decode=decode, chinese_script=script_choice, speakers=speakers), aligner


def model_choice() -> None:
    """0.6B, 1.7B or a folder given before, remembered for the session, and offered whatever went wrong (a bad
    folder, a missing model); a switch frees the model in memory before the other loads."""
    choices = {repo: label for repo, (label, _) in MODEL_CHOICES.items()}
    choices |= {folder: f"Folder: {Path(folder).name or folder}" for folder in state.model_folders}
    state.model_choice = state.model  # the model may have changed elsewhere (a folder, a download): show it
    st.selectbox(
        "Speech model", list(choices), format_func=choices.__getitem__, key="model_choice", on_change=switch_model
    )
    if state.model in MODEL_CHOICES:  # a folder's path is in the caption under the choice
        st.caption(MODEL_CHOICES[state.model][1])


def switch_model() -> None:
    state.model = state.model_choice
    load_engine.clear()  # one model in memory at a time (a run still going keeps the old one until it ends)


def word_timestamps_choice() -> asr.QwenAligner | None:
    """The "Word timestamps" switch; loads the aligner, or offers its download when it is missing."""
    st.header("Timing")
    wanted = st.toggle(
        "Word timestamps",
        key="word_timestamps",
        help="Times every word with a second model (the forced aligner), so subtitles follow the voice and "
        "each sentence starts where it is spoken. Without it, times are estimated from the speech.",
    )
    if not wanted:
        return None
    try:
        with st.spinner("Loading the word aligner…"):
            aligner = load_aligner(state.aligner, DEVICE)
    except asr.ModelNotFoundError as e:
        if asr.is_repo_id(state.aligner):
            st.caption("Word timestamps need the forced aligner, which is not on this computer yet.")
        else:  # a folder the user chose or configured: say what is wrong with it
            st.warning(f"{e.problem} Choose another folder below, or download the aligner.")
        target = state.aligner if asr.is_repo_id(state.aligner) else asr.DEFAULT_ALIGNER
        download_offer(target, "aligner", on_start=lambda: state.update(aligner=target))
        folder_field("aligner", lambda folder: state.update(aligner=folder))
        return None
    except asr.ModelLoadError as e:
        st.error(f"{e.problem} Choose another aligner folder below, or turn word timestamps off.")
        folder_field("aligner", lambda folder: state.update(aligner=folder))
        return None
    st.caption(f"Aligner: {aligner.name} · 11 languages; others get estimated times.")
    return aligner


def privacy_panel() -> None:
    """Each line is checked now, not promised."""
    st.header("Privacy")
    network = asr.netwatch.network_use()
    leftovers = asr.leftover_workdirs()
    checks = [
        (network.summary() == "none", f"Network use since start: {network.summary()}"),
        (st.get_option("server.address") in ("127.0.0.1", "localhost", "::1"),
         f"Listening on {st.get_option('server.address') or 'all addresses'}"),
        (not st.get_option("browser.gatherUsageStats"), "Usage statistics: off"),
        (not leftovers, "Temporary audio: deleted after each run" if not leftovers
         else f"Temporary audio: {len(leftovers)} folder(s) kept ({asr.KEEP_ENV} is set, or removal failed)"),
    ]  # fmt: skip
    for ok, line in checks:
        st.markdown(f"{CHECKED if ok else WARNING} {line}")
    if network.summary() != "none":
        st.caption("Name look-ups and connections are counted for the whole app, a model download included.")


def model_missing_panel(error: asr.ModelNotFoundError) -> None:
    """Explain, and offer the download (only on a click) or a folder the user already has."""
    if asr.is_repo_id(state.model):
        st.warning("The speech model is not on this computer yet.")
        st.caption("Download it once (Hugging Face or a mirror); after that, everything runs offline.")
    else:  # a folder the user chose or configured: say what is wrong with it, in the page's own terms
        st.warning(f"{error.problem} Choose another folder below or another model in the sidebar, or download one.")
    target = state.model if asr.is_repo_id(state.model) else asr.DEFAULT_MODEL
    download_offer(target, "model", on_start=lambda: state.update(model=target))
    folder_field("model", use_model_folder)


def use_model_folder(folder: str) -> None:
    """Run the model in `folder`, and keep offering it in the sidebar's choice (whatever happens next)."""
    if folder not in state.model_folders:
        state.model_folders = [*state.model_folders, folder]
    state.model = folder
    load_engine.clear()


def folder_field(kind: str, use: Callable[[str], None]) -> None:
    """ "…or use a folder you already have": a path field and its button (hidden while a download runs)."""
    if "download_job" in state:
        return
    st.divider()
    folder = st.text_input(
        f"…or use {'an' if kind[0] in 'aeiou' else 'a'} {kind} folder you already have", key=f"{kind}_folder"
    )
    if st.button("Use this folder", key=f"use_{kind}_folder", disabled=not folder.strip()):
        use(folder.strip())
        st.rerun()


def download_offer(target: str, key: str, on_start: Callable[[], None] | None = None) -> None:
    """Source choice and a download button (nothing is fetched without the click); progress while it runs.

    One download at a time for the page; `on_start` runs on the click that starts it.
    """
    if "download_job" in state:
        download_progress()
        return
    failed = state.get("download_failed")
    if failed is not None and failed[0] == key:  # kept until the next try, so other reruns do not hide it
        st.error(f"The download stopped: {failed[1]}")
    size = asr.MODEL_SIZES.get(target, "size unknown")
    # label -> what DownloadJob gets: None for HF_ENDPOINT or huggingface.co, a preset name, or the typed URL
    sources = {f"Hugging Face ({asr.default_endpoint()})": None, "hf-mirror.com (mainland China)": "hf-mirror"}
    sources[OTHER_MIRROR] = ""
    source = st.radio("Download from", list(sources), horizontal=True, key=f"source-{key}")
    endpoint = (
        st.text_input("Mirror URL", key=f"mirror-{key}", placeholder="https://mirror.example.org")
        if source == OTHER_MIRROR
        else sources[source]
    )
    label = f"Download {target.split('/')[-1].removesuffix('-hf')} ({size})"
    try:
        asr.check_disk_space(target)
        room = True
    except asr.DownloadError as e:
        st.error(str(e))
        room = False
    if st.button(label, type="primary", key=f"download_{key}", disabled=endpoint == "" or not room):
        state.download_job = asr.DownloadJob(target, endpoint=endpoint).start()
        state.download_key = key
        state.pop("download_failed", None)
        if on_start is not None:
            on_start()
        st.rerun()


@st.fragment(run_every=0.5)
def download_progress() -> None:
    job: asr.DownloadJob = state.download_job
    snapshot = job.snapshot()
    if snapshot.status in (asr.JobStatus.DONE, asr.JobStatus.CANCELLED):
        state.pop("download_job")
        if snapshot.error:
            state.download_failed = (state.download_key, snapshot.error)
        st.rerun()
    fraction = snapshot.downloaded_bytes / snapshot.total_bytes if snapshot.total_bytes else 0.0
    text = f"Downloading… {asr.format_size(snapshot.downloaded_bytes)} / {asr.format_size(snapshot.total_bytes)}"
    st.progress(min(fraction, 1.0), text=text if snapshot.total_bytes else "Starting the download…")
    if st.button("Cancel download", key="cancel_download", icon=":material/close:"):
        job.cancel()  # the partial file is deleted; files already finished are kept for the next try
        st.toast("Stopping the download…")


def recording_name(file_id: str) -> str:
    """ "Recording 1.wav" for the session's first recording, "Recording 2.wav" for the next, and so on."""
    numbers = state.recording_numbers
    numbers.setdefault(file_id, len(numbers) + 1)
    return f"Recording {numbers[file_id]}.wav"


def current_inputs(
    engine: asr.QwenEngine, options: asr.TranscribeOptions, aligner: asr.QwenAligner | None
) -> dict[str, asr.JobInput]:
    """Upload, record and live tabs, with a player, waveform and facts line for each input (live: its own panel).

    Keyed by name and content, so a file added again (or re-added with others) is the same input, and its new
    result replaces the old one. A live session, once stopped, is a card of its own.
    """
    upload_tab, record_tab, live_tab = st.tabs(
        [":material/upload_file: Upload files", ":material/mic: Record", ":material/graphic_eq: Live"]
    )
    with live_tab:
        live_result = live_page.live_panel(engine, options, aligner, still_wanted=page_is_connected())
        if live_result is not None:
            state.cards[f"live\n{state.next_result_id}"] = Card(
                state.next_result_id, live_result, made_with(engine, options, aligner)
            )
            state.next_result_id += 1
    with upload_tab:
        uploads = st.file_uploader(UPLOAD_LABEL, accept_multiple_files=True, key=f"uploads-{state.input_nonce}")
    with record_tab:
        recording = st.audio_input("Record from your microphone", key=f"recording-{state.input_nonce}")
    files = [*uploads, *([recording] if recording is not None else [])]
    inputs = {}
    for file in files:
        name = file.name if file is not recording else recording_name(file.file_id)
        data = file.getvalue()
        with st.container(border=True):
            st.markdown(f"**{name}**")
            try:
                facts, envelope = describe(file.file_id, data)
            except asr.ASRError as e:
                st.error(str(e))
                continue
            left, right = st.columns([2, 3])
            with left:
                st.audio(data)
                st.caption(facts)
            with right:
                st.area_chart(envelope, x="seconds", y="level", height=90, x_label="seconds", y_label="")
        inputs[f"{name}\n{fingerprint(file.file_id, data)}"] = asr.JobInput(name, data)
    return inputs


def page_is_connected() -> Callable[[], bool] | None:
    """Asks, from any thread, whether this page's session still has its websocket (a closed tab has not).

    The server's own view of the connection, not a heartbeat from the polling fragment: browsers slow down
    timers in background tabs, and a tab in the background must keep its run. None without a Streamlit
    runtime (the script run bare); AppTest's stand-in runtime answers with a truthy mock, so its jobs run on.
    """
    context = get_script_run_ctx()
    if context is None or not Runtime.exists():
        return None
    runtime, session_id = Runtime.instance(), context.session_id
    return lambda: runtime.is_active_session(session_id)


def progress_line(snapshot: asr.JobSnapshot) -> str:
    """e.g. "Processed 1:12 / 2:38 · 2.4× real time · about 0:36 left", or while the aligner runs
    "Processed 1:12 / 2:38 · Finding word times… 40% · 2.4× real time · about 0:36 left"; slower than real time
    "Processed 0:03.4 / 2:38 · 0.6× real time · about 3:50 left"."""
    if not snapshot.total_s:
        return "Reading the audio…"
    # Slower than real time, whole seconds of audio would stand still for more than a poll or two: tenths move.
    speed = round(snapshot.speed, 1) if snapshot.speed else None  # as the line shows it
    slow = not speed or speed < 1.0
    processed = asr.format_clock(snapshot.processed_s, tenths=slow)
    parts = [f"Processed {processed} / {asr.format_clock(snapshot.total_s)}"]
    if snapshot.stage is not None:
        parts.append(snapshot.stage.describe(snapshot.stage_share))
    if speed:
        parts.append(f"{speed:.1f}× real time")
    remaining_s = snapshot.remaining_s
    if remaining_s is not None:
        parts.append(f"about {asr.format_clock(remaining_s)} left" if remaining_s >= 1 else "almost done")
    return " · ".join(parts)


def job_panel() -> None:
    """The running job's panel, or the waiting one's: each its own fragment, polled as often as it needs."""
    if state.job.snapshot().status is asr.JobStatus.QUEUED:
        queued_panel()
    else:
        running_panel()


def _hand_over_if_ended(snapshot: asr.JobSnapshot) -> None:
    """Put an ended job's results on their cards and redraw the whole page."""
    if snapshot.status in (asr.JobStatus.DONE, asr.JobStatus.CANCELLED):
        keep_results(snapshot.results)
        state.pop("job")
        st.rerun()


def _cancel_button() -> None:
    if st.button("Cancel", key="cancel", icon=":material/stop_circle:"):
        state.job.cancel()
        st.toast("Stopping…")


@st.fragment(run_every=2.0)
def queued_panel() -> None:
    """A job waiting for the shared model: the reason, and Cancel; polled every two seconds, since nothing moves."""
    snapshot = state.job.snapshot()
    _hand_over_if_ended(snapshot)
    if snapshot.status is not asr.JobStatus.QUEUED:
        st.rerun()  # its turn has come: the whole page, so that the running panel takes this one's place
    st.info(
        "Waiting for another transcription to finish: the model is shared, so this one starts by itself as soon "
        "as the other is done."
    )
    _cancel_button()


@st.fragment(run_every=1.0)
def running_panel() -> None:
    """Progress, Cancel, and the segments done so far; hands results over when the job ends.

    The segments are one block of text, not an element each: a poll draws the same few elements however
    long the file is.
    """
    snapshot = state.job.snapshot()
    _hand_over_if_ended(snapshot)
    fraction = snapshot.processed_s / snapshot.total_s if snapshot.total_s else 0.0
    st.progress(min(fraction, 1.0), text=f"**{snapshot.current}** · {progress_line(snapshot)}")
    for notice in snapshot.notices:
        st.warning(notice, icon=":material/warning:")
    if snapshot.segments:
        st.markdown("  \n".join(f"`{asr.format_clock(s.start_s)}` {s.text}" for s in snapshot.segments))
    _cancel_button()


def keep_results(results: tuple[asr.FileResult, ...]) -> None:
    """Each finished input's result goes on its input's card, replacing the one an earlier run made; a failed or
    cancelled run leaves a finished earlier result where it is, and says so on it."""
    for key, result in zip(state.job_keys, results, strict=False):  # a cancelled job has fewer results
        earlier = state.cards.get(key)
        complete = result.error is None and not result.cancelled
        if (
            earlier is not None
            and earlier.result.transcript is not None
            and not earlier.result.cancelled
            and not complete
        ):
            why = result.error or "the new run was cancelled"
            state.cards[key] = dataclasses.replace(earlier, kept_because=why)
            continue
        if earlier is not None:
            forget_table(earlier.id)
        state.cards[key] = Card(state.next_result_id, result, state.job_made_with)
        state.next_result_id += 1


def made_with(
    engine: asr.QwenEngine, options: asr.TranscribeOptions, aligner: asr.QwenAligner | None
) -> tuple[str, ...]:
    """What a card says made it: model, language, word timestamps, and the other choices that change the text."""
    model = engine.info.name
    parts = [model.split("/")[-1].removesuffix("-hf") if asr.is_repo_id(model) else Path(model).name or model]
    parts.append(options.decode.language or "language detected")
    parts.append("word timestamps" if aligner is not None else "estimated times")
    if options.decode.context:
        parts.append("with names and terms")
    if options.chinese_script != "auto":
        label = next(label for label, value in CHINESE_SCRIPT_CHOICES.items() if value == options.chinese_script)
        parts.append(label)
    return (*parts, *speakers_made_with(options.speakers))


def edited_transcript(result_id: int, transcript: asr.Transcript) -> asr.Transcript:
    """The transcript with the user's edits from the segment table applied (edit once, export everywhere).

    An edited sentence keeps its start and end; its word times no longer match its words, so they are left out
    (its subtitles share the sentence's time by characters instead).
    """
    edits = table_edits(result_id)
    segments = []
    for index, segment in enumerate(transcript.segments):
        text = str(edits.get(index, {}).get("Text", segment.text))
        segments.append(segment if text == segment.text else dataclasses.replace(segment, text=text, words=()))
    return with_speaker_edits(result_id, dataclasses.replace(transcript, segments=tuple(segments)))


def show_result(card: Card) -> None:
    """One file's outcome: error, or language, editable segments, copy block and downloads."""
    result_id, result = card.id, card.result
    with st.container(border=True):
        st.subheader(result.name)
        st.caption("Made with " + " · ".join(card.made_with))
        if card.kept_because is not None:
            st.warning(f"Transcribing it again did not finish ({card.kept_because}): this is the earlier result.")
        for notice in result.notices:
            st.warning(notice, icon=":material/warning:")
        if result.error:
            st.error(result.error)
            return
        transcript = result.transcript
        assert transcript is not None  # a result without an error holds one (jobs.FileResult)
        if result.cancelled:
            st.warning("Cancelled: this is the part that was finished.")
        languages = ", ".join(transcript.languages) or "unknown"
        st.caption(f"Language: **{languages}** · {transcript.info.source.summary()}")
        if not transcript.segments:
            st.info(
                "No speech was found in this recording."
                if asr.NO_SPEECH_NOTE in transcript.info.notes
                else "The model returned no text for this recording."
            )
            return
        if result.audio is not None:
            player(result_id, result.name, result.audio, transcript)  # first: a press starts a fresh table
        notes = [note(s.flags) for s in transcript.segments]
        kept = kept_edits(result_id)
        rows = [
            {
                "Play": False,
                "Start": asr.format_clock(s.start_s),
                "End": asr.format_clock(s.end_s),
                **(speaker_cell(s) if transcript.speakers else {}),
                "Text": s.text,
                "Note": words,
                **kept.get(index, {}),
            }
            for index, (s, words) in enumerate(zip(transcript.segments, notes, strict=True))
        ]
        edited = edited_transcript(result_id, transcript)
        st.caption(
            "Tick Play to hear a sentence from its start. Fix a word in the table: the copy block and every download "
            "follow your edits, and each sentence keeps its times."
        )
        st.data_editor(
            rows,
            key=table_key(result_id),
            disabled=["Start", "End", "Note"],
            hide_index=True,
            row_height=row_height([s.text for s in edited.segments], notes),
            width="content",
            column_config=table_columns() | (speaker_column(transcript, edited) if transcript.speakers else {}),
        )
        speaker_panels(result_id, result.audio, edited)
        st.code(asr.render(edited, "txt") if edited.speakers else edited.text, language=None, wrap_lines=True)
        stem = Path(result.name).stem or "transcript"
        for column, fmt in zip(st.columns(len(asr.FORMATS)), asr.FORMATS, strict=True):
            column.download_button(
                fmt.upper(),
                asr.render(edited, fmt, name=result.name),
                file_name=f"{stem}.{fmt}",
                mime=asr.WRITERS[fmt].mime_type,
                key=f"download-{fmt}-{result_id}",
                icon=":material/download:",
                on_click="ignore",
                width="stretch",
            )


def cards_in_order(inputs: dict[str, asr.JobInput]) -> list[Card]:
    """The cards in the order of the inputs, then those whose input was removed (a result is never dropped)."""
    keys = [key for key in inputs if key in state.cards]
    keys += [key for key in state.cards if key not in inputs]
    return [state.cards[key] for key in keys]


def download_all(cards: list[Card]) -> None:
    """One zip with every format of every finished file, edits included, once there are several."""
    done = [
        (card.result.name, edited_transcript(card.id, card.result.transcript))
        for card in cards
        if card.result.transcript is not None
    ]
    if len(done) > 1:
        st.download_button(
            f"Download all ({len(done)} files, every format, .zip)",
            functools.partial(asr.build_zip, done),  # built only when clicked
            file_name="transcripts.zip",
            mime="application/zip",
            key="download-all",
            icon=":material/folder_zip:",
            on_click="ignore",
        )


def leave_guard() -> None:
    """While there are results or a run, the browser asks before the page is left or reloaded."""
    wanted = bool(state.cards) or "job" in state
    st.html(LEAVE_GUARD_SCRIPT % ("true" if wanted else "false"), unsafe_allow_javascript=True)


def main() -> None:
    start_run()
    st.html(PAGE_STYLE)
    st.title(":material/mic: Transcriber")
    st.caption("Private speech-to-text on this computer: nothing you record or upload leaves it.")
    engine = None
    try:
        with st.spinner("Loading the speech model…", show_time=True):
            engine = load_engine(state.model, DEVICE)
    except asr.ModelNotFoundError as e:
        sidebar(None)
        model_missing_panel(e)
        return
    except asr.ModelLoadError as e:
        sidebar(None)
        st.error(f"{e.problem} Choose another model in the sidebar, or another folder below.")
        folder_field("model", use_model_folder)
        return
    except asr.ASRError as e:
        sidebar(None)
        st.error(str(e))
        return
    options, aligner = sidebar(engine)
    inputs = current_inputs(engine, options, aligner)
    running = "job" in state
    label = "Transcribe again" if any(key in state.cards for key in inputs) else "Transcribe"
    left, right = st.columns([5, 1])
    if left.button(label, type="primary", key="transcribe", disabled=running or not inputs, width="stretch"):
        state.job_keys = list(inputs)
        state.job_made_with = made_with(engine, options, aligner)
        state.job = asr.TranscriptionJob(
            list(inputs.values()), engine=engine, options=options, aligner=aligner, still_wanted=page_is_connected()
        ).start()
        st.rerun()
    if right.button("Clear", key="clear", disabled=running, width="stretch"):
        state.input_nonce += 1
        for card in state.cards.values():
            forget_table(card.id)
        state.cards = {}
        state.recording_numbers = {}
        st.rerun()
    if running:
        job_panel()
    cards = cards_in_order(inputs)
    download_all(cards)
    for card in cards:
        show_result(card)
    page_restore.keep()


if __name__ == "__main__":  # a script run of the page
    main()
else:  # imported by `streamlit run` for `app`: Streamlit's server, with the live route in its own process
    app = st.App("app.py", routes=live_page.routes(), middleware=live_page.middleware())
