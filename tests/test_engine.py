"""The real loading and generation code, on the tiny checkpoint the suite writes itself."""

from __future__ import annotations

import pickle
import platform
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoProcessor, GenerationConfig, Qwen3ASRForConditionalGeneration
from transformers.models.qwen3_asr.processing_qwen3_asr import LANGUAGE_CODE_TO_NAME

import asr
from asr.device import check_placement, default_batch_size, resolve_device, resolve_dtype
from asr.engine import QwenEngine
from asr.generation import GenerationRequest, generate_fitting
from asr.guards import is_repetition_loop
from asr.model_output import eos_token_ids, parse_generated
from asr.results import SegmentFlag
from testbed.speech import SENTENCES


def test_our_language_table_is_the_models():
    assert asr.LANGUAGES == LANGUAGE_CODE_TO_NAME


@pytest.mark.parametrize(
    ("raw", "forced", "expected"),
    [
        ("language English<asr_text>Hello there.", None, ("English", "Hello there.")),
        ("language Chinese<asr_text>你好", None, ("Chinese", "你好")),
        ("language None<asr_text>", None, (None, "")),
        ("Hello there.", "English", ("English", "Hello there.")),
        ("Hello<asr_text> there", "German", ("German", "Hello there")),
        ("garbled<asr_text>text", None, (None, "garbledtext")),  # not a language: text kept, tag removed
        ("no tags at all", None, (None, "no tags at all")),
    ],
)
def test_parse_generated(raw, forced, expected):
    assert parse_generated(raw, forced) == expected


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(platform.machine() != "x86_64" or not Path("/proc/cpuinfo").exists(), reason="x86 Linux flags")
def test_cpu_dtype_is_bfloat16_only_where_the_cpu_computes_it_natively():
    """bf16 is emulated on AVX2-only CPUs (7x slower there): "auto" must then pick float32."""
    native = bool({"avx512bw", "avx512_bf16", "amx_bf16"} & _cpu_flags())
    assert resolve_dtype("auto", "cpu") == (torch.bfloat16 if native else torch.float32)


def test_device_and_dtype_choice_on_cpu():
    assert resolve_device("cpu") == "cpu"
    assert resolve_dtype("auto", "cpu") in (torch.bfloat16, torch.float32)
    assert resolve_dtype("auto", "mps") == torch.float16
    assert resolve_dtype("float32", "cpu") == torch.float32
    with pytest.raises(asr.OptionsError, match="Unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(asr.OptionsError, match="Unknown dtype"):
        resolve_dtype("int3", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(asr.OptionsError, match="not available"):
            resolve_device("cuda")


def test_engine_loads_through_the_app_loader(engine, tiny_model_dir):
    assert engine.info.folder == str(tiny_model_dir)
    assert engine.info.device == "cpu"
    assert engine.info.dtype == str(resolve_dtype("auto", "cpu")).removeprefix("torch.")
    assert engine.default_batch_size >= 1


def test_missing_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(asr.ModelNotFoundError, match="python -m asr download"):
        QwenEngine.load("Qwen/Qwen3-ASR-0.6B-hf")
    with pytest.raises(asr.ModelNotFoundError, match="No model folder") as missing:
        QwenEngine.load(str(tmp_path / "nowhere"))
    # The page shows the problem alone and offers its own way out (a download button, a folder field).
    assert missing.value.problem == f"No model folder at {tmp_path / 'nowhere'}."
    assert str(missing.value) == f"{missing.value.problem} {missing.value.advice}"
    assert "QWEN3_ASR_MODEL" in missing.value.advice
    copy = pickle.loads(pickle.dumps(missing.value))  # as a Ray worker's error reaches the driver
    assert (type(copy), str(copy), copy.problem) == (asr.ModelNotFoundError, str(missing.value), missing.value.problem)


def test_incomplete_model_folder_names_the_missing_file(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "processor_config.json"):
        (broken / name).write_bytes((tiny_model_dir / name).read_bytes())
    with pytest.raises(asr.ModelNotFoundError, match=r"tokenizer\.json or vocab\.json is missing"):
        QwenEngine.load(str(broken))


def test_corrupt_weights_give_a_load_error(tmp_path, tiny_model_dir):
    broken = tmp_path / "corrupt"
    broken.mkdir()
    for file in tiny_model_dir.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(asr.ModelLoadError, match="incomplete or damaged"):
        QwenEngine.load(str(broken))


def _reference_transcription(model_dir, audio, language, max_new_tokens):
    """The plain documented transformers usage: apply_transcription_request -> generate -> decode."""
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(model_dir, dtype=resolve_dtype("auto", "cpu"))
    inputs = processor.apply_transcription_request(audio=audio, language=language).to(model.device, model.dtype)
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    generated = output[:, inputs["input_ids"].shape[1] :]
    return processor.decode(generated, return_format="parsed")[0]


@pytest.mark.parametrize("language", ["English", None])
def test_golden_pipeline_equals_plain_transformers_usage(engine, tiny_model_dir, golden_clip, language):
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(language=language))
    transcript = asr.transcribe_all(golden_clip, engine=engine, options=options)
    # Preconditions that make the comparison fair: one chunk spanning the whole clip, no loop retry.
    (segment,) = transcript.segments
    assert segment.start_s == 0 and segment.end_s == pytest.approx(len(golden_clip) / asr.SAMPLE_RATE)
    assert SegmentFlag.RETRIED not in segment.flags
    budget = options.decode.max_new_tokens(segment.end_s)
    reference = _reference_transcription(tiny_model_dir, golden_clip, language, budget)
    assert segment.text == reference["transcription"]
    assert segment.text  # the tiny model always says something: an empty match would prove nothing
    assert "<asr_text>" not in segment.text


def test_batch_gives_each_chunk_its_own_text(engine, golden_clip, other_clip):
    single = engine.transcribe_chunks([golden_clip], language="English", context="", max_new_tokens=[24])
    other = engine.transcribe_chunks([other_clip], language="English", context="", max_new_tokens=[24])
    both = engine.transcribe_chunks([golden_clip, other_clip], language="English", context="", max_new_tokens=[24, 24])
    assert single[0].text != other[0].text  # the output depends on the audio
    assert [r.text for r in both] == [single[0].text, other[0].text]
    assert all(r.language == "English" and r.num_tokens == 24 and not r.finished for r in both)


def test_each_chunk_of_a_batch_stops_at_its_own_cap(engine, golden_clip, other_clip):
    short = engine.transcribe_chunks([other_clip], language="English", context="", max_new_tokens=[10])
    mixed = engine.transcribe_chunks([golden_clip, other_clip], language="English", context="", max_new_tokens=[24, 10])
    assert [r.num_tokens for r in mixed] == [24, 10]
    assert mixed[1].text == short[0].text  # the batch's longer cap does not leak into this chunk's text


def test_a_set_stop_ends_generation_before_the_prefill_runs(engine, golden_clip):
    stop = threading.Event()
    stop.set()
    (cut,) = engine.transcribe_chunks([golden_clip], language="English", context="", max_new_tokens=[200], stop=stop)
    (full,) = engine.transcribe_chunks([golden_clip], language="English", context="", max_new_tokens=[200])
    # The loop looks at the stop before each of the prefill's layers; random weights never end by themselves.
    assert (cut.text, cut.num_tokens, cut.finished) == ("", 0, False)
    assert (full.num_tokens, full.finished) == (200, False)


def test_an_engine_on_the_cpu_has_nothing_to_fall_back_to(engine):
    assert engine.fall_back_to_cpu() is None and engine.info.device == "cpu"


def test_context_reaches_the_prompt(engine, golden_clip, monkeypatch):
    """The context is the prompt's system turn and its only difference; a spy (not a stand-in) reads the prompt."""
    processor = engine._processor
    build = processor.apply_transcription_request
    prompts: list[str] = []

    def spy(*args, **kwargs):
        inputs = build(*args, **kwargs)
        prompts.append(processor.tokenizer.decode(inputs["input_ids"][0]))
        return inputs

    monkeypatch.setattr(processor, "apply_transcription_request", spy)
    context = "Stella, Tuesday, budget"
    plain = engine.transcribe_chunks([golden_clip], language="English", context="", max_new_tokens=[16])
    hinted = engine.transcribe_chunks([golden_clip], language="English", context=context, max_new_tokens=[16])
    plain_prompt, hinted_prompt = prompts
    assert hinted_prompt.startswith(f"<|im_start|>system\n{context}<|im_end|>\n")
    assert hinted_prompt.replace(context, "", 1) == plain_prompt
    assert plain[0].text != hinted[0].text  # and the model reads it


@pytest.mark.parametrize(
    ("text", "looping"),
    [
        ("the the the the the the the the the the the the the the", True),
        ("谢" * 45, True),
        ("I think so. " * 5, True),
        ("We will meet again on Tuesday morning to discuss the budget for next year.", False),
        ("no no no no", False),  # real speech repeats a little; that is not a loop
        ("", False),
    ],
)
def test_repetition_loop_detection(text, looping):
    assert is_repetition_loop(text) is looping


def test_out_of_memory_becomes_a_clear_error(engine, golden_clip, monkeypatch):
    """A real OOM cannot be provoked safely here, so the inner model's forward (which our loop and generate both
    reach) is replaced by one that raises torch's OOM."""

    def exhausted(*_, **__):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine._model.model, "forward", exhausted)
    with pytest.raises(asr.DeviceMemoryError, match=r"Ran out of cpu memory on a batch of 2 chunk.*batch size of 1"):
        engine.transcribe_chunks([golden_clip, golden_clip], language=None, context="", max_new_tokens=[8, 8])


def test_cuda_without_native_bf16_gets_float16(monkeypatch):
    """No GPU here: torch.cuda.is_bf16_supported is replaced by one that answers like a T4 or V100,
    whose bf16 exists only as (slow) emulation."""

    def like_a_t4(including_emulation: bool = True) -> bool:
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", like_a_t4)
    assert resolve_dtype("auto", "cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_dtype("auto", "cuda") == torch.bfloat16


def test_eos_ids_stored_as_one_int_or_a_list():
    assert eos_token_ids(GenerationConfig(eos_token_id=7)) == {7}
    assert eos_token_ids(GenerationConfig(eos_token_id=[7, 9])) == {7, 9}
    assert eos_token_ids(GenerationConfig()) == frozenset()


def test_a_checkpoint_with_one_eos_int_transcribes(engine, golden_clip, monkeypatch):
    ids = sorted(eos_token_ids(engine._model.generation_config))
    monkeypatch.setattr(engine._model.generation_config, "eos_token_id", ids[0])
    (result,) = engine.transcribe_chunks([golden_clip], language="English", context="", max_new_tokens=[8])
    assert result.num_tokens == 8


def test_a_model_split_with_cpu_or_disk_is_refused_with_what_went_where():
    check_placement(None, "m")  # loaded without device_map
    check_placement({"": 0}, "m")  # all on one GPU
    check_placement({"model.audio_tower": 0, "model.language_model": 1, "lm_head": 1}, "m")  # two GPUs
    split: dict[str, int | str] = {
        "model.audio_tower": 0,
        "model.language_model.layers.0": 0,
        "model.language_model.layers.1": "cpu",
    }
    with pytest.raises(asr.ModelLoadError, match=r"2 part\(s\) on 0.*1 part\(s\) on cpu.*--device cpu"):
        check_placement({**split, "lm_head": "disk"}, "m")


class _AnnouncingLock:
    """A lock that sets `waiting` when a caller starts to wait for it."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock, self.waiting = lock, threading.Event()

    def __enter__(self) -> bool:
        self.waiting.set()
        return self.lock.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        self.lock.__exit__(*exc_info)


def test_inputs_move_to_the_model_device_only_inside_the_lock(tiny_model_dir, golden_clip):
    """The model changes (here its dtype, as a fall-back to the CPU would change its device) while a call
    waits for the lock: the waiting call must use the model as it is when it gets the lock. An engine of its
    own, in float16: its linear layers stay `nn.Linear` (float32 and bfloat16 ones are prepacked for oneDNN on
    x86, and a packed weight does not follow `.to()`), and the session's engine must stay as it is."""
    engine = QwenEngine.load(str(tiny_model_dir), device="cpu", dtype="float16")
    lock = _AnnouncingLock(engine._lock)
    engine._lock = lock  # type: ignore[assignment]  # the same lock, telling when a caller waits for it
    results = []
    with lock.lock:
        worker = threading.Thread(
            target=lambda: results.append(
                engine.transcribe_chunks([golden_clip], language="English", context="", max_new_tokens=[4])
            )
        )
        worker.start()
        assert lock.waiting.wait(60)  # the worker has prepared its inputs and waits for the lock
        engine._model.to(torch.float32)
    worker.join(timeout=60)
    assert results and results[0][0].num_tokens == 4


def test_default_batch_size_by_device(engine):
    kv_per_token = 114_688  # Qwen3-ASR-0.6B in bf16: 28 layers x 8 KV heads x 128 x 2 (keys, values) x 2 bytes
    assert default_batch_size("cpu", 0, kv_per_token) == 8
    assert default_batch_size("mps", 0, kv_per_token) == 8
    assert default_batch_size("cuda:0", 76 * 2**30, kv_per_token) == 64  # an H100
    assert default_batch_size("cuda:0", 14 * 2**30, kv_per_token) == 32  # a 16 GB card with 14 GB free
    assert default_batch_size("cuda:0", 2 * 2**30, kv_per_token) == 4
    assert default_batch_size("cuda:0", 10 * 2**20, kv_per_token) == 1  # never 0
    assert engine.default_batch_size == 8


class _RecordingEngine:
    """The engine, with the batch size of each call recorded."""

    def __init__(self, engine: QwenEngine) -> None:
        self.engine, self.batches = engine, list[int]()
        self.name, self.default_batch_size, self.device = engine.name, engine.default_batch_size, engine.device

    def transcribe_chunks(self, chunks, **kwargs):
        self.batches.append(len(chunks))
        return self.engine.transcribe_chunks(chunks, **kwargs)

    def fall_back_to_cpu(self):
        return self.engine.fall_back_to_cpu()


def _limit_gpu_memory_to(extra_bytes: int) -> None:
    """Let this process's CUDA allocator hold only what it holds now plus `extra_bytes`."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + extra_bytes) / total)


@pytest.mark.cuda
def test_gpu_out_of_memory_halves_the_batch_then_falls_back_to_the_cpu(tiny_model_dir):
    from test_decode import spoken

    (golden_clip,) = spoken(SENTENCES[:1])
    engine = QwenEngine.load(str(tiny_model_dir), device="cuda", dtype="float32")
    waves, budgets = [golden_clip] * 16, [12] * 16
    request = GenerationRequest(waves, budgets, language="English", context="", stop=None)
    expected = engine.transcribe_chunks(waves[:1], max_new_tokens=budgets[:1], language="English", context="")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    engine.transcribe_chunks(waves[:2], max_new_tokens=budgets[:2], language="English", context="")
    two_rows = torch.cuda.max_memory_allocated() - before
    recording, notices = _RecordingEngine(engine), list[str]()
    try:
        _limit_gpu_memory_to(2 * two_rows)  # room for a few rows, far from 16
        halved = generate_fitting(recording, request, notices.append)
        assert recording.batches[0] == 16 and 8 in recording.batches and max(recording.batches[1:]) < 16
        assert [r.text for r in halved] == [expected[0].text] * 16 and engine.info.device.startswith("cuda")
        _limit_gpu_memory_to(0)  # not even one chunk fits: the model moves to the CPU
        moved = generate_fitting(recording, request.part(0, 2), notices.append)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert engine.info.device == "cpu" and notices and "moved to the CPU" in notices[-1]
    assert [r.num_tokens for r in moved] == [12, 12]
