"""What the tests and the benchmarks build their inputs from, importable from the repository root.

- `speech`: real speech made on the spot with espeak-ng, and the sentences it says;
- `tiny_model`: a tiny random Qwen3-ASR checkpoint (and forced aligner) that loads like the real one;
- `voiced`: the benchmark's sentences, voiced once and cached, so a machine without espeak-ng (the lent GPU)
  builds the same inputs.
"""
