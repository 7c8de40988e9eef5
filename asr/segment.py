"""Speech spans -> chunks: contiguous slices of the waveform, each one request to the model.

Spans that VAD found are merged greedily, in time order, into chunks of at most ``max_chunk_s``;
a silence longer than ``max_gap_s`` always starts a new chunk, so the model is never fed long
stretches of nothing (where ASR models tend to invent text). A chunk keeps its ``start_sample``,
and `chunk_waveform` gives both the audio the model hears (long pauses shortened) and the map
(`ChunkTimeline`) that puts times measured in that audio back on the original timeline.

Why the default ``TranscribeOptions.max_chunk_s`` is 24 s:

- It stays under the 30 s window of the Whisper-style feature extractor that Qwen3-ASR uses, so no
  request is ever truncated, with room to spare for the padding VAD adds around speech.
- It is long enough to hold several sentences, so the model has context across sentence borders
  (names, topic, language) instead of guessing from one isolated phrase.
- It is short enough that one chunk makes a readable subtitle-sized segment, and that chunks of a
  batch are of similar length, so padding them to the longest one wastes little compute.
- A span that is too long is split at its quietest point (below), so cuts land in pauses between
  words rather than inside them.

Splitting a span longer than ``max_chunk_s``: the piece that starts at the span's start may end
anywhere between 50 % and 100 % of ``max_chunk_s`` later. Energy is measured in 20 ms frames and
averaged over a sliding 100 ms window (5 frames), and the cut goes at the centre of the quietest
window. The 100 ms window prefers a real pause between words over the brief silent closure of a stop
consonant inside a word (30-60 ms). When several windows are equally quiet (digital silence), the
cut goes in the middle of the latest such run, so chunks are as long as allowed. The rest of the
span is split the same way until every piece fits; the pieces touch, so no sample of speech is
dropped.

Short files: `collect_batched_chunks` cuts the chunks after the last full batch (for a file shorter
than a batch of 24 s chunks, all of them) shorter, at pauses only, so that they fill that batch: the
batch then needs fewer decode steps, each for more rows, which costs little more on a CPU.
"""

from __future__ import annotations

import logging

import numpy as np

from .audio import SAMPLE_RATE
from .placement import ChunkTimeline
from .results import Chunk, SpeechSpan

logger = logging.getLogger(__name__)

_FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms energy frames
_WINDOW_FRAMES = 5  # 100 ms: pauses between words are longer than the closures of stop consonants
_MIN_CUT_FRACTION = 0.5  # a split piece is at least half of max_chunk_s, so splitting always advances
# Silence kept between two speech spans of a chunk (each span already has VAD's 200 ms padding on both sides).
KEPT_PAUSE_SAMPLES = round(0.3 * SAMPLE_RATE)
_SEARCH_STEP_SAMPLES = SAMPLE_RATE // 10  # the last batch's length limit is found to within 0.1 s


def collect_chunks(
    samples: np.ndarray,
    spans: list[SpeechSpan],
    *,
    max_chunk_s: float,
    max_gap_s: float = 2.0,
) -> list[Chunk]:
    """Merge speech spans into chunks of at most `max_chunk_s` seconds.

    Args:
        samples: the mono waveform at `audio.SAMPLE_RATE` that the spans point into; used to find
            the quietest point of a span that must be split.
        spans: speech spans in samples (e.g. from `vad.get_speech_spans`), in any order; overlapping
            spans are merged and parts outside the waveform are ignored.
        max_chunk_s: the longest chunk, in seconds.
        max_gap_s: the longest silence kept inside a chunk; a longer one starts a new chunk.

    Returns:
        Chunks in time order that do not overlap, each at most `max_chunk_s` long and each holding
        the spans (or pieces of a split span) it covers; together they cover every sample of every
        span. ``[]`` when there are no spans.

    Raises:
        ValueError: when `max_chunk_s` is too small to hold one sample or `max_gap_s` is negative.
    """
    max_chunk_samples, max_gap_samples = _limits(max_chunk_s, max_gap_s)
    chunks = _merge(_pieces(samples, spans, max_chunk_samples), max_chunk_samples, max_gap_samples)
    logger.debug("%d speech spans -> %d chunks (max %.1f s)", len(spans), len(chunks), max_chunk_s)
    return chunks


def collect_batched_chunks(
    samples: np.ndarray,
    spans: list[SpeechSpan],
    *,
    max_chunk_s: float,
    min_chunk_s: float,
    batch_size: int,
    max_gap_s: float = 2.0,
) -> list[Chunk]:
    """Chunks as `collect_chunks` makes them, but the last batch of `batch_size` filled with shorter ones.

    A batch decodes its chunks side by side, as many steps as its longest chunk needs, and the batches run one
    after another; a step for 8 rows costs about 1.6 times a step for one (CPU, memory-bound). A batch that is
    not full would hold more rows for little more per step, and shorter rows need fewer steps. So the chunks
    after the last full batch (a short file: all of them) are merged again from the same pieces, with the
    shortest length limit, not under `min_chunk_s`, at which they still fit one batch. The new cuts fall only
    between speech spans, where VAD heard a pause; a span is cut inside only where `max_chunk_s` needs it, as
    in `collect_chunks`. Each chunk is still transcribed on its own, so the text of a chunk whose cuts are the
    same does not change.

    Raises:
        ValueError: as `collect_chunks`, or when `min_chunk_s` is not positive or `batch_size` is under 1.
    """
    max_chunk_samples, max_gap_samples = _limits(max_chunk_s, max_gap_s)
    if min_chunk_s <= 0 or batch_size < 1:
        raise ValueError(f"min_chunk_s and batch_size must be positive, got {min_chunk_s} and {batch_size}.")
    pieces = _pieces(samples, spans, max_chunk_samples)
    chunks = _merge(pieces, max_chunk_samples, max_gap_samples)
    full = len(chunks) - len(chunks) % batch_size
    if full == len(chunks):
        return chunks
    tail = [piece for piece in pieces if piece.start_sample >= chunks[full].start_sample]
    # With a lower limit the greedy merge never makes fewer chunks: search the lowest limit that still fits.
    low, high = min(round(min_chunk_s * SAMPLE_RATE), max_chunk_samples), max_chunk_samples
    best = _merge(tail, low, max_gap_samples)
    if len(best) > batch_size:
        best = chunks[full:]
        while high - low > _SEARCH_STEP_SAMPLES:
            middle = (low + high) // 2
            merged = _merge(tail, middle, max_gap_samples)
            if len(merged) <= batch_size:
                best, high = merged, middle
            else:
                low = middle
    logger.debug("the last batch: %d chunks -> %d", len(chunks) - full, len(best))
    return chunks[:full] + best


def chunk_waveform(samples: np.ndarray, chunk: Chunk) -> tuple[np.ndarray, ChunkTimeline]:
    """The chunk's audio as the model gets it, and the map of its times back to the original timeline.

    The audio is the chunk's speech spans with every pause between them longer than 0.3 s cut to 0.3 s
    (half of it from each side of the pause). The audio encoder and the prefill cost grows with every
    second fed, silence included (on CPU they are about half the time of a run), and a long pause carries
    no words (silence is also where ASR models invent text).
    """
    pieces: list[tuple[int, int]] = []  # (original start, original end)
    half = KEPT_PAUSE_SAMPLES // 2
    for previous, span in zip((None, *chunk.spans), chunk.spans, strict=False):
        if previous is not None:
            pause_start, pause_end = previous.end_sample, span.start_sample
            if pause_end - pause_start > KEPT_PAUSE_SAMPLES:
                pieces += [(pause_start, pause_start + half), (pause_end - half, pause_end)]
            else:
                pieces.append((pause_start, pause_end))
        pieces.append((span.start_sample, span.end_sample))
    pieces = [(start, end) for start, end in pieces if end > start]
    offsets = np.cumsum([0] + [end - start for start, end in pieces])
    timeline = ChunkTimeline(
        tuple((int(offset), start, end - start) for offset, (start, end) in zip(offsets, pieces, strict=False))
    )
    if len(pieces) == 1:
        return samples[pieces[0][0] : pieces[0][1]], timeline
    return np.concatenate([samples[start:end] for start, end in pieces]), timeline


def _limits(max_chunk_s: float, max_gap_s: float) -> tuple[int, int]:
    """The longest chunk and the longest kept silence, in samples; ValueError for limits that cannot work."""
    max_chunk_samples = int(max_chunk_s * SAMPLE_RATE)  # rounded down: a chunk never exceeds max_chunk_s
    if max_chunk_samples < 1:
        raise ValueError(f"max_chunk_s must be positive, got {max_chunk_s}.")
    if max_gap_s < 0:
        raise ValueError(f"max_gap_s must not be negative, got {max_gap_s}.")
    return max_chunk_samples, round(max_gap_s * SAMPLE_RATE)


def _pieces(samples: np.ndarray, spans: list[SpeechSpan], max_chunk_samples: int) -> list[SpeechSpan]:
    """The spans, normalised, with each one longer than `max_chunk_samples` split at its quietest points."""
    return [
        piece
        for span in _normalize_spans(spans, len(samples))
        for piece in _split_span(samples, span, max_chunk_samples)
    ]


def _merge(pieces: list[SpeechSpan], limit_samples: int, max_gap_samples: int) -> list[Chunk]:
    """Pieces in time order merged greedily into chunks of at most `limit_samples` (a longer piece stays alone);
    a silence over `max_gap_samples` always starts a new chunk."""
    chunks: list[Chunk] = []
    current: list[SpeechSpan] = []
    for piece in pieces:
        if current and (
            piece.end_sample - current[0].start_sample > limit_samples
            or piece.start_sample - current[-1].end_sample > max_gap_samples
        ):
            chunks.append(Chunk(current[0].start_sample, current[-1].end_sample, tuple(current)))
            current = []
        current.append(piece)
    if current:
        chunks.append(Chunk(current[0].start_sample, current[-1].end_sample, tuple(current)))
    return chunks


def _normalize_spans(spans: list[SpeechSpan], num_samples: int) -> list[SpeechSpan]:
    """Clamp spans to the waveform, drop empty ones, sort them, and merge those that overlap or touch."""
    merged: list[SpeechSpan] = []
    for span in sorted(spans, key=lambda s: (s.start_sample, s.end_sample)):
        start, end = max(0, span.start_sample), min(num_samples, span.end_sample)
        if end <= start:
            continue
        if merged and start <= merged[-1].end_sample:
            if end > merged[-1].end_sample:
                merged[-1] = SpeechSpan(merged[-1].start_sample, end)
        else:
            merged.append(SpeechSpan(start, end))
    return merged


def _split_span(samples: np.ndarray, span: SpeechSpan, max_samples: int) -> list[SpeechSpan]:
    """Cut a span into touching pieces of at most `max_samples`, each cut at the quietest point."""
    pieces = []
    start = span.start_sample
    while span.end_sample - start > max_samples:
        cut = _quietest_cut(samples, start, max_samples)
        pieces.append(SpeechSpan(start, cut))
        start = cut
    pieces.append(SpeechSpan(start, span.end_sample))
    return pieces


def _quietest_cut(samples: np.ndarray, start: int, max_samples: int) -> int:
    """The sample in (start + max_samples / 2, start + max_samples] where the audio is quietest."""
    num_frames = max_samples // _FRAME_SAMPLES
    first = int(np.ceil(num_frames * _MIN_CUT_FRACTION))  # first frame allowed to hold the cut
    if first >= num_frames:  # too short to measure energy (only with tiny max_samples): cut at the limit
        return start + max_samples
    frames = samples[start : start + num_frames * _FRAME_SAMPLES].astype(np.float64).reshape(num_frames, -1)
    power = np.mean(frames**2, axis=1)
    kernel = np.ones(_WINDOW_FRAMES)
    # Mean power over a window centred on each frame; near the ends the window is cut short, not zero-padded.
    window_power = np.convolve(power, kernel, mode="same") / np.convolve(np.ones(num_frames), kernel, mode="same")
    candidates = window_power[first:]
    last = len(candidates) - 1 - int(np.argmin(candidates[::-1]))  # the latest of equal minima: fuller chunks
    begin = last
    while begin > 0 and candidates[begin - 1] == candidates[last]:
        begin -= 1  # a run of equally quiet windows (digital silence): cut in its middle
    frame = first + (begin + last) // 2
    return start + frame * _FRAME_SAMPLES + _FRAME_SAMPLES // 2
