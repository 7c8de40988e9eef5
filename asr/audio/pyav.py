"""The PyAV (FFmpeg) path: any container and codec, decoded packet by packet so damage becomes silence."""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..errors import AudioDecodeError
from ..results import DecodedAudio, SourceInfo
from .messages import damaged_rate_error, error_reason, not_audio_error, too_long_error
from .samples import SAMPLE_RATE, collect, mix, plausible_rate, resample_to_16k
from .source import Source, recognise_non_media

logger = logging.getLogger(__name__)

# Integer sample formats and the divisor FFmpeg (and libsndfile) use to scale them to [-1, 1).
_INT_SCALE = {"s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63}


@dataclass
class DecodeStats:
    """What happened while decoding one stream; filled in by ``decoded_frames``."""

    invalid_packets: int = 0  # packets the decoder rejected and we skipped
    read_error: str | None = None  # why the demuxer stopped early (damaged or truncated container)
    decoded_frames: int = 0  # frames the decoder gave (the silence that replaces damaged packets not counted)
    sample_rate: int = 0  # of the first decoded frame
    channels: int = 0  # of the first decoded frame

    def note(self, frame: av.AudioFrame) -> None:
        """Count a decoded frame; the first one tells the source's real rate and channel count."""
        if not self.decoded_frames:
            self.sample_rate, self.channels = frame.sample_rate, frame.layout.nb_channels
        self.decoded_frames += 1


def decode_with_pyav(
    src: Source, max_duration_s: float | None, spill_dir: Path | None, cancel: threading.Event | None
) -> DecodedAudio:
    """Decode the first audio stream with FFmpeg."""
    container = _open_container(src)
    with container:
        stream = _first_audio_stream(container, src)
        declared = _declared_duration_s(container, stream)
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            raise too_long_error(src, declared, max_duration_s)
        stats = DecodeStats()
        frames = decoded_frames(container, stream, stats)
        try:
            samples = collect(resample_to_16k(_downmixed(frames)), max_duration_s, spill_dir, cancel)
        except (av.FFmpegError, OSError) as e:  # from the resampler or a failing file object
            raise AudioDecodeError(
                f"Decoding {src.label} failed ({error_reason(e)}). The file may be damaged; try exporting it again."
            ) from e
        finally:
            frames.close()
        if samples is None:
            assert max_duration_s is not None  # collect gives None only when a limit was passed
            raise too_long_error(src, _measure_stream_s(container, stream), max_duration_s)
        log_damage(stats)
        if not stats.decoded_frames or not len(samples):
            raise _no_samples_error(src, stats)
        codec = _codec_name(stream)
        info = SourceInfo(
            len(samples) / SAMPLE_RATE, stats.sample_rate, stats.channels, codec, container.format.name, src.size_bytes
        )
    return DecodedAudio(samples, info)


def pyav_info(src: Source) -> SourceInfo:
    """The facts from the container, checked by decoding its first frame; a full decode if no length is declared."""
    container = _open_container(src)
    with container:
        stream = _first_audio_stream(container, src)
        declared = _declared_duration_s(container, stream)
        if declared is not None:
            stats = DecodeStats()
            frames = decoded_frames(container, stream, stats)
            try:
                for _ in frames:
                    if stats.decoded_frames:
                        break
            except OSError as e:
                raise AudioDecodeError(f"Cannot read {src.label} ({error_reason(e)}).") from e
            finally:
                frames.close()
            if not stats.decoded_frames:
                raise _no_samples_error(src, stats)
            return SourceInfo(
                declared, stats.sample_rate, stats.channels, _codec_name(stream), container.format.name, src.size_bytes
            )
    return decode_with_pyav(src, None, None, None).source


def _open_container(src: Source) -> av.container.InputContainer:
    """Open the input with FFmpeg, or explain why it cannot be read."""
    target = src.rewound()
    if isinstance(target, str):  # FFmpeg reads "x:..." as protocol x (http:, concat:, ...); a path is a file
        target = "file:" + target
    try:
        return av.open(target, "r", metadata_errors="ignore")
    except (av.FFmpegError, OSError) as e:
        kind = recognise_non_media(src.head)
        if kind is not None:
            raise not_audio_error(src, kind) from e
        raise AudioDecodeError(
            f"{src.subject} could not be read as audio or video ({error_reason(e)}). It may be truncated or damaged, "
            "or not a media file at all. Try exporting or downloading it again, or convert it to WAV or MP3."
        ) from e


def _first_audio_stream(container: av.container.InputContainer, src: Source) -> av.audio.stream.AudioStream:
    """The first audio stream, or an error that says what the input holds instead."""
    if container.streams.audio:
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise AudioDecodeError(
                f"{src.subject} uses an audio codec this app cannot decode. Convert it to WAV or MP3 first."
            )
        rate = stream.codec_context.sample_rate
        if rate and not plausible_rate(rate):  # 0: the codec tells its rate only once it decodes
            raise damaged_rate_error(src, rate)
        return stream
    kind = recognise_non_media(src.head) or _image_kind(container)
    if kind is None and container.streams.video:
        raise AudioDecodeError(
            f"{src.subject} has no audio track: it holds only video, so there is nothing to transcribe. "
            "Choose a video with sound, or the audio file itself."
        )
    raise not_audio_error(src, kind)


def _declared_duration_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    """The length the container declares for the stream (or for itself), if any; nothing is decoded."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return None


def decoded_frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, stats: DecodeStats
) -> Generator[av.AudioFrame, None, None]:
    """Every frame FFmpeg can decode from the stream; a packet it rejects becomes silence of its length."""
    packets = container.demux(stream)  # ends with empty packets that flush the decoder
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as e:  # the container is unreadable from here on, typically truncated
            stats.read_error = error_reason(e)
            break
        try:
            frames = packet.decode()
        except MemoryError:
            raise
        except av.FFmpegError:  # InvalidDataError and kin: a damaged packet (codecs raise various types)
            stats.invalid_packets += 1
            yield from _silence_for(packet, stream, stats)
            continue
        for frame in frames:
            stats.note(frame)
            yield frame
    # The demuxer stopped early, so its flush packets never came: drain what the decoder still holds.
    try:
        frames = stream.codec_context.decode(None)
    except av.FFmpegError:
        stats.invalid_packets += 1
        return
    for frame in frames:
        stats.note(frame)
        yield frame


def _silence_for(packet: av.Packet, stream: av.audio.stream.AudioStream, stats: DecodeStats) -> list[av.AudioFrame]:
    """Silence as long as a packet that would not decode, so later audio keeps its place on the timeline."""
    rate = stats.sample_rate or stream.codec_context.sample_rate
    if not (packet.duration and packet.time_base and rate):
        return []
    samples = round(packet.duration * packet.time_base * rate)
    if samples <= 0:
        return []
    frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype=np.float32), format="flt", layout="mono")
    frame.sample_rate = rate
    return [frame]


def _downmixed(frames: Iterable[av.AudioFrame]) -> Iterator[tuple[np.ndarray, int]]:
    """Mono float32 samples and their rate from decoded frames of any sample format and channel layout."""
    for frame in frames:
        data = frame.to_ndarray()
        channels = frame.layout.nb_channels
        if not frame.format.is_planar:  # interleaved: one row of samples * channels values
            data = data.reshape(-1, channels).T
        kind = frame.format.packed.name
        if kind == "u8":
            data = (data.astype(np.float32) - 128.0) / 128.0
        elif kind in _INT_SCALE:
            data = data.astype(np.float32) / np.float32(_INT_SCALE[kind])
        else:  # flt or dbl
            data = data.astype(np.float32, copy=False)
        yield (data[0] if channels == 1 else mix(data)), frame.sample_rate


def _measure_stream_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    """The stream's length from the timestamps of its remaining packets, which are read but not decoded."""
    end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.duration:
                end = max(end or 0, packet.pts + packet.duration)
    except av.FFmpegError:  # only the length in the message becomes vaguer; the refusal stands
        logger.debug("Could not read to the end of the stream to measure it")
    if end is None or not stream.time_base:
        return None
    return float((end - (stream.start_time or 0)) * stream.time_base)


def _codec_name(stream: av.audio.stream.AudioStream) -> str:
    """FFmpeg's codec name ("mp3"), not its decoder's ("mp3float")."""
    return stream.codec_context.codec.canonical_name


def _image_kind(container: av.container.InputContainer) -> str | None:
    """Describe inputs that FFmpeg opens as a picture or as text art (it can, but they hold no sound)."""
    name = container.format.name
    if name.endswith("_pipe") or name == "image2":
        return "an image"
    if name == "tty":
        return "a text file"
    return None


def log_damage(stats: DecodeStats) -> None:
    """Warn (with counts only) when packets were skipped or the input ended in damage."""
    if stats.invalid_packets:
        logger.warning("Replaced %d damaged audio packet(s) with silence", stats.invalid_packets)
    if stats.read_error is not None:
        logger.warning("Stopped reading early (%s): the input is probably truncated or damaged", stats.read_error)


def _no_samples_error(src: Source, stats: DecodeStats) -> AudioDecodeError:
    """The message for an input that opened but gave no samples."""
    kind = recognise_non_media(src.head)
    if kind is not None:
        return not_audio_error(src, kind)
    if stats.invalid_packets or stats.read_error is not None:
        damage = f"{stats.invalid_packets} damaged packet(s)" if stats.invalid_packets else stats.read_error
        return AudioDecodeError(
            f"No audio could be decoded from {src.label} ({damage}): it is probably truncated or damaged. "
            "Try exporting or downloading it again."
        )
    return AudioDecodeError(
        f"{src.subject} contains no audio samples (0 seconds of sound): the recording is empty or was cut off "
        "before any audio. Record or export it again."
    )
