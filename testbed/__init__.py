"""What the tests, the benchmarks and the README's screenshots build on, importable from the repository root.

- `speech`, `voiced`, `conversations`: real speech made on the spot with espeak-ng (the sentences it says,
  cached for a machine without espeak-ng, and conversations of several voices);
- `tiny_model`: a tiny random Qwen3-ASR checkpoint (and forced aligner) that loads like the real one;
- `corpus`: the decoder's input files; `hub_mirror`: a local stand-in for the Hugging Face hub;
- `app_server`, `browser`: the page served as the launcher serves it, and a user's steps on it in Chromium;
- `screenshots`, with `scripted_engine` and `scripted_streamlit`: the README's pictures;
- `soak`, `fuzz_decoder`, `der`, `import_contracts`: the soak, the decoder's fuzz harness, the speaker error
  rate, and the page's import contract.
"""
