"""The full-size Qwen3-ASR-0.6B architecture, shared by the benchmarks (random weights, no download)."""

from __future__ import annotations

# Config of `Qwen/Qwen3-ASR-0.6B-hf`: the audio encoder and the Qwen3 text decoder; the token ids
# (audio token, pad, eos) are set by each benchmark to match the tokenizer it uses.
FULL_SIZE_0_6B: dict[str, dict[str, object]] = {
    "audio_config": {
        "model_type": "qwen3_asr_encoder", "num_mel_bins": 128, "encoder_layers": 18, "encoder_attention_heads": 14,
        "encoder_ffn_dim": 3584, "d_model": 896, "output_dim": 1024, "n_window": 50, "n_window_infer": 800,
        "downsample_hidden_size": 480,
    },
    "text_config": {
        "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072,
        "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "max_position_embeddings": 65536, "tie_word_embeddings": True,
    },
}  # fmt: skip
