"""Who speaks when: speaker turns from the audio alone, then labels on the transcript's words and segments.

`find_speaker_turns` (turns.py: windows in VAD speech, embedded by a `SpeakerEmbedder`, clustered by
clustering.py) needs no text; `label_segments` (assign.py) puts the turns on the segments. Importing this
package loads neither torch nor scikit-learn: the model and the clustering load on first use.
"""

from .assign import label_segments
from .edits import merge_speakers, move_segment, rename_speaker
from .embedding import CamppEmbedder, Region, SpeakerEmbedder, load_speaker_model
from .turns import find_speaker_turns

__all__ = [
    "CamppEmbedder",
    "Region",
    "SpeakerEmbedder",
    "find_speaker_turns",
    "label_segments",
    "load_speaker_model",
    "merge_speakers",
    "move_segment",
    "rename_speaker",
]
