"""Any audio or video input -> the one waveform the pipeline uses: mono float32 samples at 16 kHz.

Why it is built this way:

* **PyAV for everything.** Its wheels bundle FFmpeg, so phone recordings (m4a/aac), browser recordings
  (webm/opus), podcasts (mp3), and the first audio track of a video (mp4/mov/mkv) all decode without a
  system ``ffmpeg`` (whisper's ``load_audio`` shells out to one).
* **soundfile as a fast path** for WAV, FLAC and Ogg Vorbis, whose samples libsndfile hands over in large
  blocks instead of one Python round trip per packet. It is tried only when the first bytes say RIFF/WAVE,
  fLaC or OggS (so libsndfile never probes, or prints warnings about, an mp3 or an mp4), and only for codecs
  listed in ``_SOUNDFILE_CODECS``, which names them the way FFmpeg does, so both paths report the same
  ``SourceInfo``. Anything else, or anything libsndfile refuses, goes to PyAV.
* **One resampler for both paths.** Samples are made float and mono at the source rate first, then go
  through the same FFmpeg resampler (``av.AudioResampler(format="flt", layout="mono", rate=16000)``, flushed
  at the end), so a 44.1 kHz WAV gives the same samples whichever path read it. 16 kHz input is not resampled.
* **We average the channels ourselves.** Asked for ``layout="mono"``, FFmpeg downmixes stereo as
  ``0.707 * (L + R)`` (no normalisation for float output): 1.41 times (+3 dB) a signal present in both
  channels, with a different matrix for each layout. The plain average is predictable, keeps the level, and
  works for any channel count, including layouts with no named channels.
* **Bytes and file objects are decoded in memory** (``io.BytesIO`` or the object itself): the upload itself
  never touches the disk. Only the decoded samples of an input longer than ``SPILL_AFTER_S`` may go to disk,
  and only into the private folder the caller passes as ``spill_dir`` (``tempfiles.private_workdir``), under
  a generated name, removed when the run ends.
* **Damaged packets become silence, one packet at a time.** faster-whisper's ``_ignore_invalid_frames``
  wraps ``container.decode()``, but a generator that raised cannot resume, so that stops at the first bad
  packet. We demux and decode each packet ourselves; a packet FFmpeg rejects is replaced by silence of its
  length (so later speech keeps its timestamps) and counted, and we fail only if nothing decodes at all.
  Damage FFmpeg does not report as a bad packet is not covered: in an MP3 with overwritten bytes the parser
  resynchronises on the next frame header, the lost frames are simply missing, and later speech moves earlier.
* **Long inputs are refused early.** ``max_duration_s`` is checked against the length the container
  declares before anything is decoded, then against the samples as they arrive (browser recordings often
  declare no length).
* **Privacy.** The log gets counts and durations only: never a file name, a path or any content. Messages
  meant for the user travel in ``AudioDecodeError`` and may name the path the user gave us.
"""

from .decoder import decode_audio, read_source_info
from .overview import AudioOverview, overview
from .samples import SAMPLE_RATE, SPILL_AFTER_S, release_resident_pages, spill_map
from .source import AUDIO_SUFFIXES, AudioSource

__all__ = [
    "AUDIO_SUFFIXES",
    "SAMPLE_RATE",
    "SPILL_AFTER_S",
    "AudioOverview",
    "AudioSource",
    "decode_audio",
    "overview",
    "read_source_info",
    "release_resident_pages",
    "spill_map",
]
