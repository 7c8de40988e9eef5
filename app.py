"""The Streamlit page: widgets, options, calls into `asr`, and results. No model or audio logic here.

Transcription runs in a background job (`asr.jobs`), so the page stays responsive: a fragment
polls the job twice a second to draw progress and the segments that are done, and Cancel stops it
within a second or two. Results live in `st.session_state` and are never replaced by a later error. A job
stops by itself when its page has been disconnected for a few seconds (a closed tab), see
`page_is_connected`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

import asr
from asr import netwatch
from asr.hub import LARGE_MODEL, check_disk_space, default_endpoint, is_repo_id
from asr.jobs import DownloadJob, FileResult, JobInput, JobSnapshot, JobStatus, TranscriptionJob
from asr.results import SegmentFlag, format_clock
from asr.tempfiles import KEEP_ENV, leftover_workdirs

st.set_page_config(page_title="Transcriber · private speech-to-text", page_icon=":material/mic:", layout="wide")

MODEL = os.environ.get(asr.MODEL_ENV) or asr.DEFAULT_MODEL  # env read once, here
ALIGNER = os.environ.get("QWEN3_ASR_ALIGNER") or asr.DEFAULT_ALIGNER
DEVICE = os.environ.get("QWEN3_ASR_DEVICE", "auto")
UPLOAD_TYPES = ["wav", "mp3", "flac", "ogg", "oga", "opus", "m4a", "aac", "webm", "mp4", "mov", "mkv", "m4v"]
AUTO = "Auto-detect"
OTHER_MIRROR = "Another mirror"
# Material icons, not emoji: they render everywhere, emoji show as empty boxes where no emoji font is installed.
CHECKED, WARNING = ":green[:material/check_circle:]", ":orange[:material/warning:]"
LANGUAGE_CHOICES = [AUTO, *sorted(asr.LANGUAGES.values())]
MODEL_CHOICES = {  # label -> repo id; the choice is offered when the app runs one of these (not a folder)
    f"Qwen3-ASR-0.6B · {asr.MODEL_SIZES[asr.DEFAULT_MODEL]} · faster": asr.DEFAULT_MODEL,
    f"Qwen3-ASR-1.7B · {asr.MODEL_SIZES[LARGE_MODEL]} · more accurate, slower": LARGE_MODEL,
}
CHINESE_SCRIPT_CHOICES = {  # label -> TranscribeOptions.chinese_script
    "As the model writes them": "auto",
    "Simplified (简体)": "simplified",
    "Traditional, Taiwan (繁體)": "traditional",
    "Traditional, Hong Kong (繁體)": "traditional-hk",
}
FLAG_WORDS = {
    SegmentFlag.TOKEN_CAP: "may be cut short (hit the length limit)",
    SegmentFlag.REPETITION_LOOP: "repeats itself: check this part against the audio",
    SegmentFlag.RETRIED: "decoded twice to stop a repetition",
    SegmentFlag.APPROXIMATE_TIMES: "times estimated from the speech, not word by word",
    SegmentFlag.CONTEXT_ECHO: "dropped: the model only repeated your names and terms (silence or noise?)",
}

netwatch.start_watching()
state = st.session_state
state.setdefault("model", MODEL)
state.setdefault("results", [])  # list of (result id, FileResult), newest first
state.setdefault("input_nonce", 0)  # bumped by Clear: new widget keys empty the inputs
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
        privacy_panel()
    decode = asr.DecodeOptions(language=None if language == AUTO else language, context=context.strip())
    return asr.TranscribeOptions(decode=decode, chinese_script=CHINESE_SCRIPT_CHOICES[script]), aligner


def model_choice() -> None:
    """0.6B or 1.7B, remembered for the session; a switch frees the model in memory before the other loads."""
    repos = list(MODEL_CHOICES.values())
    if state.model not in repos:  # a folder of the user's own: nothing to choose
        return
    label = st.selectbox("Speech model", list(MODEL_CHOICES), index=repos.index(state.model), key="model_choice")
    if MODEL_CHOICES[label] != state.model:
        state.model = MODEL_CHOICES[label]
        load_engine.clear()  # one model in memory at a time (a run still going keeps the old one until it ends)
        st.rerun()


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
            aligner = load_aligner(ALIGNER, DEVICE)
    except asr.ModelNotFoundError:
        st.caption("Word timestamps need the forced aligner, which is not on this computer yet.")
        download_offer(ALIGNER, "aligner")
        return None
    except asr.ASRError as e:
        st.error(str(e))
        return None
    st.caption(f"Aligner: {aligner.name} · 11 languages; others get estimated times.")
    return aligner


def privacy_panel() -> None:
    """Each line is checked now, not promised."""
    st.header("Privacy")
    network = netwatch.network_use()
    leftovers = leftover_workdirs()
    checks = [
        (network.summary() == "none", f"Network use since start: {network.summary()}"),
        (st.get_option("server.address") in ("127.0.0.1", "localhost", "::1"),
         f"Listening on {st.get_option('server.address') or 'all addresses'}"),
        (not st.get_option("browser.gatherUsageStats"), "Usage statistics: off"),
        (not leftovers, "Temporary audio: deleted after each run" if not leftovers
         else f"Temporary audio: {len(leftovers)} folder(s) kept ({KEEP_ENV} is set, or removal failed)"),
    ]  # fmt: skip
    for ok, line in checks:
        st.markdown(f"{CHECKED if ok else WARNING} {line}")
    if network.summary() != "none":
        st.caption("Name look-ups and connections are counted for the whole app, a model download included.")


def model_missing_panel(error: asr.ModelNotFoundError) -> None:
    """Explain, and offer the download (only on a click) or a folder the user already has."""
    if is_repo_id(state.model):
        st.warning("The speech model is not on this computer yet.")
        st.caption("Download it once (Hugging Face or a mirror); after that, everything runs offline.")
    else:  # a folder the user chose or configured: say what is wrong with it
        st.warning(str(error))
    target = state.model if is_repo_id(state.model) else asr.DEFAULT_MODEL
    download_offer(target, "model", on_start=lambda: state.update(model=target))
    if "download_job" not in state:
        st.divider()
        folder = st.text_input("…or use a model folder you already have", key="model_folder")
        if st.button("Use this folder", key="use_folder", disabled=not folder):
            state.model = folder.strip()
            st.rerun()


def download_offer(target: str, key: str, on_start: Callable[[], None] | None = None) -> None:
    """Source choice and a download button (nothing is fetched without the click); progress while it runs.

    One download at a time for the page; `on_start` runs on the click that starts it.
    """
    if "download_job" in state:
        download_progress()
        return
    size = asr.MODEL_SIZES.get(target, "size unknown")
    # label -> what DownloadJob gets: None for HF_ENDPOINT or huggingface.co, a preset name, or the typed URL
    sources = {f"Hugging Face ({default_endpoint()})": None, "hf-mirror.com (mainland China)": "hf-mirror"}
    sources[OTHER_MIRROR] = ""
    source = st.radio("Download from", list(sources), horizontal=True, key=f"source-{key}")
    endpoint = (
        st.text_input("Mirror URL", key=f"mirror-{key}", placeholder="https://mirror.example.org")
        if source == OTHER_MIRROR
        else sources[source]
    )
    label = f"Download {target.split('/')[-1].removesuffix('-hf')} ({size})"
    try:
        check_disk_space(target)
        room = True
    except asr.DownloadError as e:
        st.error(str(e))
        room = False
    if st.button(label, type="primary", key=f"download_{key}", disabled=endpoint == "" or not room):
        state.download_job = DownloadJob(target, endpoint=endpoint).start()
        if on_start is not None:
            on_start()
        st.rerun()


@st.fragment(run_every=0.5)
def download_progress() -> None:
    job: DownloadJob = state.download_job
    snapshot = job.snapshot()
    if snapshot.status in (JobStatus.DONE, JobStatus.CANCELLED):
        state.pop("download_job")
        if snapshot.error:
            state.download_error = snapshot.error
        st.rerun()
    fraction = snapshot.downloaded_bytes / snapshot.total_bytes if snapshot.total_bytes else 0.0
    text = f"Downloading… {snapshot.downloaded_bytes / 1e9:.2f} / {snapshot.total_bytes / 1e9:.2f} GB"
    st.progress(min(fraction, 1.0), text=text if snapshot.total_bytes else "Starting the download…")
    if st.button("Cancel download", key="cancel_download", icon=":material/close:"):
        job.cancel()  # the partial file is deleted; files already finished are kept for the next try
        st.toast("Stopping the download…")


def current_inputs() -> list[JobInput]:
    """Upload tab and record tab, with a player, waveform and facts line for each input."""
    upload_tab, record_tab = st.tabs([":material/upload_file: Upload files", ":material/mic: Record"])
    with upload_tab:
        uploads = st.file_uploader(
            "Recordings or videos (WAV, MP3, M4A, FLAC, OGG, OPUS, WEBM, MP4, MOV, MKV)",
            type=UPLOAD_TYPES,
            accept_multiple_files=True,
            key=f"uploads-{state.input_nonce}",
        )
    with record_tab:
        recording = st.audio_input("Record from your microphone", key=f"recording-{state.input_nonce}")
    files = [*uploads, *([recording] if recording is not None else [])]
    inputs = []
    for number, file in enumerate(files, start=1):
        name = file.name if file is not recording else f"Recording {number}.wav"
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
        inputs.append(JobInput(name, data))
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


def progress_line(snapshot: JobSnapshot) -> str:
    """e.g. "Processed 1:12 / 2:38 · 2.4× real time · about 0:36 left"."""
    if not snapshot.total_s:
        return "Reading the audio…"
    parts = [f"Processed {format_clock(snapshot.processed_s)} / {format_clock(snapshot.total_s)}"]
    if snapshot.speed:
        parts.append(f"{snapshot.speed:.1f}× real time")
    if snapshot.remaining_s is not None:
        parts.append(f"about {format_clock(snapshot.remaining_s)} left")
    return " · ".join(parts)


@st.fragment(run_every=0.5)
def job_panel() -> None:
    """Progress, Cancel, and the segments done so far; hands results over when the job ends."""
    job: TranscriptionJob = state.job
    snapshot = job.snapshot()
    if snapshot.status in (JobStatus.DONE, JobStatus.CANCELLED):
        for result in snapshot.results:
            state.results.insert(0, (state.next_result_id, result))
            state.next_result_id += 1
        state.pop("job")
        st.rerun()
    if snapshot.status is JobStatus.QUEUED:
        st.info("Waiting for another transcription to finish (the model is shared)…")
    else:
        fraction = snapshot.processed_s / snapshot.total_s if snapshot.total_s else 0.0
        st.progress(min(fraction, 1.0), text=f"**{snapshot.current}** · {progress_line(snapshot)}")
        for notice in snapshot.notices:
            st.warning(notice, icon=":material/warning:")
        for segment in snapshot.segments:
            st.markdown(f"`{format_clock(segment.start_s)}` {segment.text}")
    if st.button("Cancel", key="cancel", icon=":material/stop_circle:"):
        job.cancel()
        st.toast("Stopping…")


def edited_transcript(result_id: int, transcript: asr.Transcript) -> asr.Transcript:
    """The transcript with the user's edits from the segment table applied (edit once, export everywhere).

    An edited sentence keeps its start and end; its word times no longer match its words, so they are left out
    (its subtitles share the sentence's time by characters instead).
    """
    edits = state.get(f"edit-{result_id}", {}).get("edited_rows", {})
    segments = []
    for index, segment in enumerate(transcript.segments):
        text = str(edits.get(index, {}).get("Text", segment.text))
        segments.append(segment if text == segment.text else dataclasses.replace(segment, text=text, words=()))
    return dataclasses.replace(transcript, segments=tuple(segments))


def clicked_start(result_id: int, transcript: asr.Transcript) -> float | None:
    """The start of the sentence whose Play box was ticked since the last run (None: no new tick).

    A tick is an edit of the table (`st.data_editor` reports no row clicks); the ticks seen so far are kept,
    so only a new one moves the player.
    """
    edits = state.get(f"edit-{result_id}", {}).get("edited_rows", {})
    ticked = {int(index) for index, change in edits.items() if change.get("Play")}
    seen_key = f"played-{result_id}"
    new = sorted(ticked - state.get(seen_key, set()))
    state[seen_key] = ticked
    return transcript.segments[new[-1]].start_s if new else None


def show_result(result_id: int, result: FileResult) -> None:
    """One file's outcome: error, or language, editable segments, copy block and downloads."""
    with st.container(border=True):
        st.subheader(result.name)
        for notice in result.notices:
            st.warning(notice, icon=":material/warning:")
        if result.error:
            st.error(result.error)
            return
        transcript = result.transcript
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
            start_s = clicked_start(result_id, transcript)
            if start_s is not None:
                state[f"start-{result_id}"] = start_s
            start_s = state.get(f"start-{result_id}")  # kept, so other reruns leave the player as it is
            st.audio(result.audio, start_time=start_s or 0.0, autoplay=start_s is not None)
        rows = [
            {
                "Play": False,
                "Start": format_clock(s.start_s),
                "End": format_clock(s.end_s),
                "Text": s.text,
                "Note": "; ".join(FLAG_WORDS[f] for f in s.flags if f in FLAG_WORDS),
            }
            for s in transcript.segments
        ]
        st.caption(
            "Tick Play to hear a sentence from its start. Fix a word in the table: the copy block and every download "
            "follow your edits, and each sentence keeps its times."
        )
        st.data_editor(
            rows,
            key=f"edit-{result_id}",
            disabled=["Start", "End", "Note"],
            hide_index=True,
            column_config={
                "Play": st.column_config.CheckboxColumn(
                    "Play", width="small", help="Play the recording from this sentence"
                ),
                "Text": st.column_config.TextColumn(width="large"),
            },
        )
        edited = edited_transcript(result_id, transcript)
        st.code(edited.text, language=None, wrap_lines=True)
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


def download_all() -> None:
    """One zip with every format of every finished file, edits included, once there are several."""
    done = [
        (result.name, edited_transcript(result_id, result.transcript))
        for result_id, result in reversed(state.results)  # oldest first, as the files were added
        if result.transcript is not None
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


def main() -> None:
    st.title(":material/mic: Transcriber")
    st.caption("Private speech-to-text on this computer: nothing you record or upload leaves it.")
    engine = None
    try:
        with st.spinner("Loading the speech model…", show_time=True):
            engine = load_engine(state.model, DEVICE)
    except asr.ModelNotFoundError as e:
        sidebar(None)
        if "download_error" in state:
            st.error(state.pop("download_error"))
        model_missing_panel(e)
        return
    except asr.ASRError as e:
        sidebar(None)
        st.error(str(e))
        return
    options, aligner = sidebar(engine)
    inputs = current_inputs()
    running = "job" in state
    label = "Transcribe again" if state.results and inputs else "Transcribe"
    left, right = st.columns([5, 1])
    if left.button(label, type="primary", key="transcribe", disabled=running or not inputs, width="stretch"):
        state.job = TranscriptionJob(
            inputs, engine=engine, options=options, aligner=aligner, still_wanted=page_is_connected()
        ).start()
        st.rerun()
    if right.button("Clear", key="clear", disabled=running, width="stretch"):
        state.input_nonce += 1
        state.results = []
        st.rerun()
    if running:
        job_panel()
    download_all()
    for result_id, result in state.results:
        show_result(result_id, result)


main()
