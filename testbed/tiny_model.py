"""Write a tiny, randomly initialised Qwen3-ASR checkpoint that loads like the real one.

    python -m testbed.tiny_model OUTDIR            # the speech model
    python -m testbed.tiny_model OUTDIR --aligner  # the forced aligner

The folder holds what `Qwen/Qwen3-ASR-0.6B-hf` holds (config.json, generation_config.json,
model.safetensors, tokenizer files, chat template, preprocessor and processor configs), with the
same model classes and file layout but a few kilobytes of weights and a small byte-level BPE
tokenizer trained here. Its text is gibberish; what it proves is that our loading, prompting,
batching and parsing code runs the real transformers implementation end to end. The benchmark,
the app tests and the download tests reuse it.

With ``--aligner`` it writes a tiny Qwen3-ForcedAligner instead, laid out as
`Qwen/Qwen3-ForcedAligner-0.6B-hf` is: the same model family with a token-classification head
(`Qwen3ASRForTokenClassification`) whose classes are 80 ms steps, a ``<timestamp>`` token, and the
aligner's chat template (the audio, then each word followed by two timestamp slots). Its times are
random; what it proves is that our alignment code runs the real transformers implementation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Special tokens the processor and chat template need. `<asr_text>` is an ordinary added token:
# the output parser looks for it after special tokens have been skipped.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
)
ASR_TEXT_TOKEN = "<asr_text>"
TIMESTAMP_TOKEN = "<timestamp>"
ALIGNER_CLASSES = 100  # 80 ms steps: 8 s, so that random weights put many words inside a short clip

# The aligner's prompt: the audio placeholder, then every word of the transcript followed by a pair of
# timestamp slots (its start and end), which the classification head fills in.
ALIGNER_CHAT_TEMPLATE = (
    "{%- set state = namespace(audio='', words=[]) -%}"
    "{%- for m in messages if m.content is not string -%}{%- for p in m.content -%}"
    "{%- if p.type == 'audio' -%}{%- set state.audio = state.audio + '"
    + "<|audio_start|><|audio_pad|><|audio_end|>"
    + "' -%}"
    "{%- elif p.type == 'text' -%}{%- set state.words = state.words + [p.text] -%}{%- endif -%}"
    "{%- endfor -%}{%- endfor -%}"
    "{{- state.audio -}}{%- for word in state.words -%}{{- word + '<timestamp><timestamp>' -}}{%- endfor -%}"
)

# Our own rendering of the Qwen3-ASR prompt: the system turn carries the context, the user turn one
# audio placeholder per audio, and an assistant turn (if any) is rendered so that
# `continue_final_message=True` can prefill "language <Name><asr_text>".
_AUDIO_PLACEHOLDER = "<|audio_start|><|audio_pad|><|audio_end|>"
_PARTS = "{%- set parts = [{'type': 'text', 'text': m.content}] if m.content is string else m.content -%}"
CHAT_TEMPLATE = (
    "{%- set sys = namespace(text='') -%}{%- set aud = namespace(text='') -%}"
    "{%- for m in messages -%}" + _PARTS + "{%- for p in parts -%}"
    "{%- if m.role == 'system' and p.type == 'text' -%}{%- set sys.text = sys.text + p.text -%}{%- endif -%}"
    "{%- if p.type == 'audio' -%}{%- set aud.text = aud.text + '" + _AUDIO_PLACEHOLDER + "' -%}{%- endif -%}"
    "{%- endfor -%}{%- endfor -%}"
    "{{- '<|im_start|>system\\n' + sys.text + '<|im_end|>\\n<|im_start|>user\\n' + aud.text + '<|im_end|>\\n' -}}"
    "{%- for m in messages if m.role == 'assistant' -%}" + _PARTS + "{{- '<|im_start|>assistant\\n' -}}"
    "{%- for p in parts if p.type == 'text' -%}{{- p.text -}}{%- endfor -%}{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Please call Stella and ask her to bring these things.",
    "We will meet again on Tuesday morning to discuss the budget for next year. The weather is cloudy.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother.",
    "ni hao, jin tian tian qi hen hao. 你好，今天天气很好。我们明天见。谢谢大家。",
    "language English language Chinese language Cantonese language German language French language Japanese",
    "Bonjour tout le monde. Guten Morgen. Buenos días. こんにちは。안녕하세요. Привет, как дела?",
)


def build_tokenizer(extra_special: tuple[str, ...] = ()):
    """A Qwen2-style byte-level BPE tokenizer with the Qwen3-ASR special tokens (and `extra_special` ones)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(list(_CORPUS) * 4, trainer)
    model_state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model_state["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "audio_token": "<|audio_pad|>",
            "audio_bos_token": "<|audio_start|>",
            "audio_eos_token": "<|audio_end|>",
        },
    )
    special = (*SPECIAL_TOKENS, *extra_special)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in special], special_tokens=True)
    tokenizer.add_tokens([AddedToken(ASR_TEXT_TOKEN, special=False, normalized=False)])
    return tokenizer


def _tiny_config(tokenizer, **extra):
    """The tiny model's configuration; `extra` adds what the aligner needs."""
    from transformers import Qwen3ASRConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (*SPECIAL_TOKENS, ASR_TEXT_TOKEN)}
    eos = [ids["<|endoftext|>"], ids["<|im_end|>"]]
    return Qwen3ASRConfig(
        audio_config={
            "model_type": "qwen3_asr_encoder",
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "output_dim": 48,
            "n_window": 50,
            "n_window_infer": 800,
            "downsample_hidden_size": 8,
        },
        text_config={
            "model_type": "qwen3",
            "vocab_size": len(tokenizer),
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 12,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": False,
        },
        audio_token_id=ids["<|audio_pad|>"],
        pad_token_id=ids["<|im_end|>"],
        eos_token_id=eos,
        initializer_range=0.5,
        tie_word_embeddings=False,
        **extra,
    )


def write_tiny_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """Write the speech model's checkpoint into `out_dir` (created if needed) and return it."""
    import torch
    from transformers import GenerationConfig, Qwen3ASRForConditionalGeneration

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = _tiny_config(tokenizer)
    eos, pad = config.eos_token_id, config.pad_token_id
    torch.manual_seed(seed)
    model = Qwen3ASRForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=False, max_new_tokens=512)
    model.save_pretrained(out_dir)
    _save_processor(out_dir, tokenizer, CHAT_TEMPLATE)
    return out_dir


def write_tiny_aligner(out_dir: Path, *, seed: int = 0) -> Path:
    """Write the forced aligner's checkpoint into `out_dir` (created if needed) and return it."""
    import torch
    from transformers import Qwen3ASRForTokenClassification

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(extra_special=(TIMESTAMP_TOKEN,))
    config = _tiny_config(
        tokenizer,
        num_labels=ALIGNER_CLASSES,
        timestamp_token_id=tokenizer.convert_tokens_to_ids(TIMESTAMP_TOKEN),
        architectures=["Qwen3ASRForTokenClassification"],
    )
    torch.manual_seed(seed)
    model = Qwen3ASRForTokenClassification(config).eval()
    with torch.no_grad():  # a wider head than the default init, so that words get different random times
        model.score.weight.normal_(0.0, 1.0)
    model.save_pretrained(out_dir)
    _save_processor(out_dir, tokenizer, ALIGNER_CHAT_TEMPLATE)
    return out_dir


def _save_processor(out_dir: Path, tokenizer, chat_template: str) -> None:
    from transformers import Qwen3ASRFeatureExtractor, Qwen3ASRProcessor

    processor = Qwen3ASRProcessor(
        feature_extractor=Qwen3ASRFeatureExtractor(), tokenizer=tokenizer, chat_template=chat_template
    )
    processor.save_pretrained(out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aligner", action="store_true", help="write the forced aligner instead")
    args = parser.parse_args(argv)
    write = write_tiny_aligner if args.aligner else write_tiny_checkpoint
    path = write(args.out_dir, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
