"""`python -m asr download` against a local hub mirror, then loading the model with the network cut.

The CLI runs in a subprocess, as a user would run it: huggingface_hub reads HF_HUB_CACHE and
HF_ENDPOINT once, at import, so setting them with monkeypatch in this process would not reach an
already imported huggingface_hub. Each subprocess gets its own fresh cache and HF_HOME.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from testbed.hub_mirror import HubMirror
from testbed.tiny_model import write_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
REPO = "Qwen/Qwen3-ASR-0.6B-hf"
# What `download_model` fetches (its allow_patterns: *.json, *.safetensors, *.jinja, *.txt) ...
WANTED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "processor_config.json")
# ... and what every hub repo also holds but the app does not need.
NOT_WANTED = ("README.md", ".gitattributes")
# Hub and network settings of the outer environment that must not leak into the subprocesses.
_SCRUBBED = (
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "QWEN3_ASR_MODEL",
    "TQDM_DISABLE",
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The tiny checkpoint laid out like the hub repo, README and .gitattributes included."""
    folder = write_tiny_checkpoint(tmp_path_factory.mktemp("repo"))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Qwen3-ASR (tiny test copy)\n")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    return folder


@pytest.fixture
def mirror(checkpoint):
    with HubMirror({REPO: checkpoint}) as running:
        yield running


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """Environment of a subprocess with an empty hub cache of its own."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_CACHE=str(tmp_path / "hub_cache"),
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def run_python(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python *argv` in the repository, with `env`, its output captured."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_python("-m", "asr", *args, env=env)


def run_cli_on_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as in a user's shell; return (exit code, stderr)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, columns
    proc = subprocess.Popen(
        [sys.executable, "-m", "asr", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
        reader.join(timeout=10)
        os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


def snapshot_of(env: dict[str, str], mirror: HubMirror) -> Path:
    return Path(env["HF_HUB_CACHE"]) / "models--Qwen--Qwen3-ASR-0.6B-hf" / "snapshots" / mirror.repos[REPO].commit


def assert_downloaded(env: dict[str, str], mirror: HubMirror, checkpoint: Path) -> None:
    """The wanted files came over the wire once each, and the cache holds exactly their bytes."""
    snapshot = snapshot_of(env, mirror)
    for name in WANTED:
        assert mirror.count("GET", mirror.resolve_path(REPO, name)) == 1, name
        assert (snapshot / name).read_bytes() == (checkpoint / name).read_bytes(), name
    for name in NOT_WANTED:
        assert mirror.count("GET", mirror.resolve_path(REPO, name)) == 0, name
        assert not (snapshot / name).exists(), name
    assert (snapshot.parents[1] / "refs" / "main").read_text() == mirror.repos[REPO].commit


_PROGRESS_BAR = re.compile(r": +\d+%\|")  # tqdm: "Fetching 7 files:  71%|███▏ | 5/7 [...]"


def assert_one_line_error(result: subprocess.CompletedProcess, starts: str) -> None:
    """Exit code 1 and, besides progress bars drawn before the failure, one line of stderr: the error."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not _PROGRESS_BAR.search(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(starts), result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_download_from_mirror_given_by_endpoint_option(mirror, env, checkpoint):
    code, stderr = run_cli_on_terminal("download", "--model", REPO, "--endpoint", mirror.url, env=env)

    assert code == 0, stderr
    assert "Fetching 7 files" in stderr  # the repo's 9 files less README.md and .gitattributes
    assert "100%" in stderr
    assert "Download complete" in stderr  # the byte counter users watch for the 1.9 GB download
    assert f"{REPO} is ready in {snapshot_of(env, mirror)}" in stderr
    assert mirror.count("GET", f"/api/models/{REPO}/revision/main") == 1
    assert_downloaded(env, mirror, checkpoint)


def test_download_from_mirror_given_by_hf_endpoint(mirror, env, checkpoint):
    result = run_cli("download", "--model", REPO, env={**env, "HF_ENDPOINT": mirror.url})

    assert result.returncode == 0, result.stderr
    assert "Fetching 7 files" in result.stderr and "100%" in result.stderr
    assert result.stdout == ""
    assert_downloaded(env, mirror, checkpoint)


def test_second_download_fetches_nothing_again(mirror, env, checkpoint):
    assert run_cli("download", "--endpoint", mirror.url, env=env).returncode == 0
    fetched = len(mirror.requests)

    again = run_cli("download", "--endpoint", mirror.url, env=env)

    assert again.returncode == 0, again.stderr
    assert [method for method, _ in mirror.requests[fetched:]] == ["GET"]  # only the revision look-up
    assert_downloaded(env, mirror, checkpoint)


_LOAD_WITHOUT_NETWORK = """
import json, socket, sys

attempts = []

def cut_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo"):
        attempts.append(f"{event} {args[1] if event == 'socket.connect' else args[0]!r}")
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in ("127.0.0.1", "::1", "localhost"):
        raise ConnectionRefusedError(f"network is cut: {args[1]}")

sys.addaudithook(cut_network)
from asr.engine import QwenEngine

engine = QwenEngine.load(sys.argv[1], device="cpu")
print(json.dumps({"attempts": attempts, "folder": engine.info.folder, "device": engine.info.device}))
"""


def test_downloaded_model_loads_with_network_cut(mirror, env, checkpoint):
    assert run_cli("download", "--endpoint", mirror.url, env=env).returncode == 0
    mirror.stop()  # even loopback connections would now fail
    offline = {k: v for k, v in env.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}

    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_NETWORK, REPO],
        cwd=ROOT,
        env=offline,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert Path(report["folder"]) == snapshot_of(env, mirror)
    assert report["device"] == "cpu"


_LOCATE = """
import sys
from asr.hub import locate_model
from asr.errors import ModelNotFoundError

try:
    print("found", locate_model(sys.argv[1]))
except ModelNotFoundError as e:
    print(f"ModelNotFoundError: {e}")
"""


def test_interrupted_download_is_not_taken_for_a_model(mirror, env):
    mirror.fail(500, match="model.safetensors", method="GET")  # metadata fine, weights fail mid-way

    result = run_cli("download", "--endpoint", mirror.url, env=env)

    assert_one_line_error(result, f"error: Could not download {REPO} from {mirror.url}")
    assert mirror.count("GET", mirror.resolve_path(REPO, "model.safetensors")) == 1
    assert not (snapshot_of(env, mirror) / "model.safetensors").exists()
    located = subprocess.run(
        [sys.executable, "-c", _LOCATE, REPO],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert located.returncode == 0, located.stderr
    assert located.stdout.startswith("ModelNotFoundError: The model Qwen/Qwen3-ASR-0.6B-hf is not on this computer")


def test_failing_mirror_is_a_one_line_error(mirror, env):
    mirror.fail(500)

    result = run_cli("download", "--endpoint", mirror.url, env=env)

    assert_one_line_error(result, f"error: Could not download {REPO} from {mirror.url}")
    assert mirror.count("GET", f"/api/models/{REPO}/revision/main") >= 1  # it asked the mirror, not huggingface.co
    assert not snapshot_of(env, mirror).exists()


def test_unreachable_mirror_is_a_one_line_error(mirror, env):
    url = mirror.url
    mirror.stop()  # nothing listens on the port any more: connection refused

    result = run_cli("download", "--endpoint", url, env=env)

    assert_one_line_error(result, f"error: Could not download {REPO} from {url}")
    assert not snapshot_of(env, mirror).exists()


def test_repo_the_mirror_lacks_is_a_one_line_error(mirror, env):
    result = run_cli("download", "--model", "Qwen/Qwen3-ASR-9B-hf", "--endpoint", mirror.url, env=env)

    assert_one_line_error(result, f"error: Could not download Qwen/Qwen3-ASR-9B-hf from {mirror.url}")
    assert mirror.count("GET", "/api/models/Qwen/Qwen3-ASR-9B-hf/revision/main") == 1


@pytest.mark.parametrize("model", ["Qwen3-ASR-0.6B-hf", "Qwen/Qwen3-ASR/0.6B", "/Qwen3-ASR-0.6B-hf", "Qwen/"])
def test_malformed_repo_id_is_refused_before_going_online(mirror, env, model):
    result = run_cli("download", "--model", model, "--endpoint", mirror.url, env=env)

    assert_one_line_error(result, f"error: {model!r} is not a Hugging Face repo id like {REPO!r}")
    assert mirror.requests == []


def test_mirror_answers_file_requests_like_the_hub(mirror, checkpoint):
    from urllib.request import Request, urlopen

    repo = mirror.repos[REPO]
    url = mirror.url + mirror.resolve_path(REPO, "model.safetensors", revision="main")
    data = (checkpoint / "model.safetensors").read_bytes()
    with urlopen(Request(url, method="HEAD")) as head:
        assert head.headers["X-Repo-Commit"] == repo.commit
        assert head.headers["X-Linked-Etag"].strip('"') == repo.sha256["model.safetensors"]
        assert int(head.headers["X-Linked-Size"]) == int(head.headers["Content-Length"]) == len(data)
        assert head.read() == b""
    with urlopen(Request(url, headers={"Range": "bytes=100-"})) as resumed:  # how the client resumes
        assert resumed.status == 206
        assert resumed.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
        assert resumed.read() == data[100:]


# --- resuming, cancelling, unreachable hosts, and what the privacy panel counts --------------------------

# huggingface_hub reads and writes a download in 10 MB chunks and resumes from the last whole chunk; the
# tiny checkpoint's weights are 0.5 MB, so these runs use 64 kB chunks to have a middle to stop in.
_SMALL_CHUNKS = "from huggingface_hub import constants; constants.DOWNLOAD_CHUNK_SIZE = 1 << 16\n"
_CLI_SMALL_CHUNKS = _SMALL_CHUNKS + "import sys; from asr.cli import main; sys.exit(main(sys.argv[1:]))"


def leftovers(env: dict[str, str]) -> list[str]:
    """Partial files anywhere in the hub cache."""
    return [p.name for p in Path(env["HF_HUB_CACHE"]).rglob("*") if p.name.endswith(".incomplete")]


def test_dropped_connection_resumes_where_it_stopped(mirror, env, checkpoint):
    weights = mirror.resolve_path(REPO, "model.safetensors")
    size = (checkpoint / "model.safetensors").stat().st_size
    mirror.drop_half_way("model.safetensors")

    result = run_python("-c", _CLI_SMALL_CHUNKS, "download", "--endpoint", mirror.url, env=env)

    assert result.returncode == 0, result.stderr
    (first, resumed) = [header for path, header in mirror.ranges if path == weights]
    assert first is None  # the whole file was asked for, and the mirror hung up half way ...
    asked = re.fullmatch(r"bytes=(\d+)-", resumed)
    assert asked is not None
    offset = int(asked[1])  # ... then only the rest
    assert 0 < offset <= size // 2 and offset % (1 << 16) == 0
    assert mirror.sent_bytes[weights] == size // 2 + (size - offset)  # less than the file twice
    assert (snapshot_of(env, mirror) / "model.safetensors").read_bytes() == (
        checkpoint / "model.safetensors"
    ).read_bytes()
    assert leftovers(env) == []


def test_a_connection_that_keeps_dropping_leaves_no_model_that_looks_complete(mirror, env):
    mirror.drop_half_way("model.safetensors", times=1000)

    result = run_python("-c", _CLI_SMALL_CHUNKS, "download", "--endpoint", mirror.url, env=env)

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Trying to resume download" in result.stderr  # huggingface_hub's warnings tell of each try
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Could not download {REPO} from {mirror.url}: RemoteProtocolError"), last
    assert len([path for path, _ in mirror.ranges if path.endswith("model.safetensors")]) == 6  # 1 + 5 retries
    assert not (snapshot_of(env, mirror) / "model.safetensors").exists()
    assert leftovers(env) == []
    located = run_python("-c", _LOCATE, REPO, env=env)
    assert located.stdout.startswith("ModelNotFoundError: The model Qwen/Qwen3-ASR-0.6B-hf is not on this computer")


_CANCEL = (
    _SMALL_CHUNKS
    + """
import io, json, sys, threading
from tqdm import tqdm
from asr.errors import DownloadCancelled
from asr.hub import download_model

cancel = threading.Event()

class CancelAfterFirstChunk(tqdm):
    '''Quiet bars; the first chunk that arrives presses Cancel, as a user would mid-download.'''

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "file": io.StringIO()})

    def update(self, n=1):
        result = super().update(n)
        if self.unit == "B" and self.n > 0:
            cancel.set()
        return result

try:
    download_model(sys.argv[1], endpoint=sys.argv[2], tqdm_class=CancelAfterFirstChunk, cancel=cancel)
    print(json.dumps({"outcome": "finished"}))
except DownloadCancelled as e:
    print(json.dumps({"outcome": "cancelled", "message": str(e)}))
"""
)


def test_cancel_leaves_no_model_that_looks_complete_and_a_retry_finishes(mirror, env, checkpoint):
    result = run_python("-c", _CANCEL, REPO, mirror.url, env=env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "cancelled"
    assert report["message"].startswith(f"The download of {REPO} was cancelled.")
    assert not (snapshot_of(env, mirror) / "model.safetensors").exists()
    assert leftovers(env) == []
    assert run_python("-c", _LOCATE, REPO, env=env).stdout.startswith("ModelNotFoundError:")

    again = run_cli("download", "--endpoint", mirror.url, env=env)

    assert again.returncode == 0, again.stderr
    for name in WANTED:
        assert (snapshot_of(env, mirror) / name).read_bytes() == (checkpoint / name).read_bytes(), name


def test_preset_and_bad_sources(mirror, env):
    from asr.hub import DOWNLOAD_SOURCES, resolve_endpoint

    assert resolve_endpoint("hf-mirror") == DOWNLOAD_SOURCES["hf-mirror"] == "https://hf-mirror.com"
    assert resolve_endpoint("huggingface") == "https://huggingface.co"
    assert resolve_endpoint(" https://mirror.example.org/hub/ ") == "https://mirror.example.org/hub"

    result = run_cli("download", "--endpoint", "hf-mirror.com", env=env)  # a host without its scheme

    assert_one_line_error(result, "error: 'hf-mirror.com' is not a download source. Use one of huggingface, hf-mirror")
    assert mirror.requests == []


# Names under .invalid never resolve (RFC 6761), with or without an internet connection.
_UNREACHABLE = "https://hub.example.invalid"

_WATCHED_DOWNLOAD = """
import json, socket, sys
from asr import netwatch
from asr.errors import DownloadError
from asr.hub import download_model

netwatch.start_watching()
socket.getaddrinfo("127.0.0.1", 80)  # a plain address and localhost ask no name server
socket.getaddrinfo("localhost", 80)
before = netwatch.network_use().summary()
try:
    download_model(sys.argv[1], endpoint=sys.argv[2])
    error = None
except DownloadError as e:
    error = str(e)
after = netwatch.network_use()
try:
    socket.getaddrinfo("other.example.invalid", 443)  # not during a download: not the user's
except OSError:
    pass
print(json.dumps({"before": before, "error": error, "after": after.summary(), "lookups": after.lookups,
                  "download_lookups": after.download_lookups, "later": netwatch.network_use().summary()}))
"""


def test_unreachable_host_is_said_in_words_and_counted_as_the_users_download(env):
    result = run_python("-c", _WATCHED_DOWNLOAD, REPO, _UNREACHABLE, env=env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["before"] == "none"
    assert report["error"] == (
        "This computer could not reach hub.example.invalid: no internet connection, or the name could not be "
        "looked up. Try another download source, or copy the model folder from another computer."
    )
    assert report["lookups"] >= 1 and report["download_lookups"] == report["lookups"]
    assert report["after"].endswith("all for the model download you started")
    assert report["after"] != "none"
    assert report["later"].endswith("of them for the model download you started, the others not")


def test_a_download_from_a_mirror_on_this_computer_is_no_network_use(mirror, env):
    result = run_python("-c", _WATCHED_DOWNLOAD, REPO, mirror.url, env=env)

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["error"] is None and report["after"] == "none"


def test_huggingface_unreachable_suggests_the_mirror():
    import socket

    from asr.hub import HUGGING_FACE, _failure_message

    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as lookup:
            raise RuntimeError("ConnectError: [Errno -2] Name or service not known") from lookup
    except RuntimeError as error:
        message = _failure_message(REPO, HUGGING_FACE, error)
    assert message == (
        "This computer could not reach huggingface.co: no internet connection, or the name could not be looked up. "
        "Try the mirror, or copy the model folder from another computer."
    )
