"""A local stand-in for the Hugging Face hub (or a mirror of it), for the download tests and the screenshots.

    with HubMirror({"Qwen/Qwen3-ASR-0.6B-hf": checkpoint_dir}) as mirror:
        snapshot_download("Qwen/Qwen3-ASR-0.6B-hf", endpoint=mirror.url)
        assert mirror.count("GET", "/Qwen/Qwen3-ASR-0.6B-hf/resolve/<sha>/config.json") == 1

It serves each folder as a model repo with one commit, over plain HTTP on 127.0.0.1, and answers
exactly the requests `huggingface_hub.snapshot_download` (2.x) makes, with the headers it checks:

- `GET /api/models/{repo}/revision/{revision}`: the repo info (`id`, `sha`: the commit, `siblings`).
- `GET /api/models/{repo}/tree/{revision}[/{path}]?recursive=...`: the file listing (`type`, `path`,
  `size`, `oid`: the git blob id, and `lfs` for weights) that snapshot_download filters with
  `allow_patterns` and caches under `trees/{commit}.json`.
- `HEAD` and `GET /{repo}/resolve/{revision}/{filename}`: the file, with `X-Repo-Commit` (required),
  `ETag` (the git blob sha1; it names the blob in the cache), `Content-Length`, and for LFS files
  (`*.safetensors`) `X-Linked-Etag` (sha256) and `X-Linked-Size`, as the hub sends them. No
  `X-Xet-Hash` header, so the client (even with `hf_xet` installed) downloads over plain HTTP from
  the same URL. `Range: bytes=a-b` is honoured (the client sends it to resume a download).

Errors look like the hub's: 404 with `X-Error-Code` RepoNotFound, RevisionNotFound or EntryNotFound.
`fail(status, match, method)` makes the requests whose path contains `match` answer `status` instead.
`drop_half_way(match, times)` makes the next file downloads whose path contains `match` stop at the
file's middle byte and close the connection, as a network that drops out does.
Every request is recorded (`requests`, `count`, and for file downloads `ranges` and `sent_bytes`) so a
test can assert what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".gguf")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Repo:
    """One served folder: its files, their ids, and the commit they make."""

    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.folder = folder
        self.files = sorted(
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts
        )
        self.blob_ids: dict[str, str] = {}
        self.sha256: dict[str, str] = {}
        commit = hashlib.sha1(repo_id.encode())
        for name in self.files:
            data = (folder / name).read_bytes()
            self.blob_ids[name] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            self.sha256[name] = hashlib.sha256(data).hexdigest()
            commit.update(f"{name}\0{self.blob_ids[name]}\n".encode())
        self.commit = commit.hexdigest()  # 40 hex digits, like a git commit id

    def resolves(self, revision: str) -> bool:
        return revision in ("main", self.commit)

    def size(self, name: str) -> int:
        return (self.folder / name).stat().st_size

    def tree_entry(self, name: str) -> dict:
        entry = {"type": "file", "path": name, "size": self.size(name), "oid": self.blob_ids[name]}
        if name.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": self.sha256[name], "size": self.size(name), "pointerSize": 134}
        return entry


class HubMirror:
    """Serve `{repo_id: folder}` as a Hugging Face hub on http://127.0.0.1:PORT (a context manager)."""

    def __init__(self, repos: dict[str, Path | str]) -> None:
        self.repos = {repo_id: _Repo(repo_id, Path(folder)) for repo_id, folder in repos.items()}
        self.requests: list[tuple[str, str]] = []  # (method, path without query), in arrival order
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._failure: tuple[int, str, str | None] | None = None
        self._drops: dict[str, int] = {}  # path part -> how many more file GETs drop half way
        self.ranges: list[tuple[str, str | None]] = []  # (path, Range header) of every file GET
        self.sent_bytes: Counter[str] = Counter()  # path -> body bytes sent for it, over all GETs
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        handler = type("_BoundHandler", (self._handler(),), {"mirror": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-mirror", daemon=True)
        self._thread.start()
        return self

    def _handler(self) -> type[_Handler]:
        """What answers the requests (a subclass may hold some back)."""
        return _Handler

    def stop(self) -> None:
        """Stop serving and close the listening socket: later connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the mirror is not running"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests look at and control ----------------------------------------------------------------

    def count(self, method: str, path: str) -> int:
        """How many `method` requests arrived for `path` (percent-decoded, no query)."""
        with self._lock:
            return self._counts[(method, path)]

    def resolve_path(self, repo_id: str, filename: str, revision: str | None = None) -> str:
        """The path the client asks for a file under (it downloads files by commit id)."""
        return f"/{repo_id}/resolve/{revision or self.repos[repo_id].commit}/{filename}"

    def fail(self, status: int | None, match: str = "", method: str | None = None) -> None:
        """Answer `status` to every (`method`, or any) request whose path contains `match`; `fail(None)` heals."""
        self._failure = None if status is None else (status, match, method)

    def drop_half_way(self, match: str, times: int = 1) -> None:
        """The next `times` GETs of a file whose path contains `match` stop at the file's middle and hang up.

        A request that starts past the middle (a resumed download) is answered in full.
        """
        self._drops[match] = times

    def _take_drop(self, path: str) -> bool:
        with self._lock:
            for match, left in self._drops.items():
                if match in path and left > 0:
                    self._drops[match] = left - 1
                    return True
            return False

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))
            self._counts[(method, path)] += 1


class _Handler(BaseHTTPRequestHandler):
    mirror: HubMirror  # set on the subclass HubMirror.start makes
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 30  # an idle keep-alive connection frees its thread after this

    def log_message(self, format, *args) -> None:  # quiet: pytest shows failures, not access logs
        pass

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    # -- routing ------------------------------------------------------------------------------------

    def _dispatch(self, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.mirror._record(self.command, path)
        failure = self.mirror._failure
        if failure is not None and failure[1] in path and failure[2] in (None, self.command):
            self._error(failure[0], None, f"Mirror failure injected for {path}", send_body)
            return
        if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path):
            self._repo_info(match[1], match[2], send_body)
        elif match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path):
            self._tree(match[1], match[2], match[3], send_body)
        elif match := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            self._file(match[1], match[2], match[3], send_body)
        else:
            self._error(404, None, f"Not served by this mirror: {path}", send_body)

    def _lookup(self, repo_id: str, revision: str, send_body: bool) -> _Repo | None:
        repo = self.mirror.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", send_body)
            return None
        if not repo.resolves(revision):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, send_body, repo.commit)
            return None
        return repo

    def _repo_info(self, repo_id: str, revision: str, send_body: bool) -> None:
        if repo := self._lookup(repo_id, revision, send_body):
            info = {
                "_id": repo.commit[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": repo.commit,
                "private": False,
                "gated": False,
                "disabled": False,
                "tags": ["transformers", "safetensors"],
                "siblings": [{"rfilename": name} for name in repo.files],
            }
            self._json(info, send_body, repo.commit)

    def _tree(self, repo_id: str, revision: str, sub: str | None, send_body: bool) -> None:
        if repo := self._lookup(repo_id, revision, send_body):
            prefix = (sub or "/").strip("/")
            recursive = "recursive=true" in (urlsplit(self.path).query or "").lower()
            entries, folders = [], set()
            for name in repo.files:
                if prefix and not name.startswith(prefix + "/"):
                    continue
                rest = name[len(prefix) + 1 :] if prefix else name
                if recursive or "/" not in rest:
                    entries.append(repo.tree_entry(name))
                if "/" in rest:  # list the folders on the way (all of them when recursive)
                    parts = rest.split("/")[:-1] if recursive else rest.split("/")[:1]
                    for depth in range(1, len(parts) + 1):
                        folders.add("/".join(([prefix] if prefix else []) + parts[:depth]))
            entries += [{"type": "directory", "path": f, "size": 0, "oid": "0" * 40} for f in sorted(folders)]
            self._json(entries, send_body, repo.commit)

    def _file(self, repo_id: str, revision: str, filename: str, send_body: bool) -> None:
        repo = self._lookup(repo_id, revision, send_body)
        if repo is None:
            return
        if filename not in repo.files:
            self._error(404, "EntryNotFound", f"{filename} does not exist on {revision}", send_body, repo.commit)
            return
        data = (repo.folder / filename).read_bytes()
        status, start, end = 200, 0, len(data)
        headers = {
            "X-Repo-Commit": repo.commit,
            "ETag": f'"{repo.blob_ids[filename]}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if filename.endswith(LFS_SUFFIXES):
            headers["X-Linked-Etag"] = f'"{repo.sha256[filename]}"'
            headers["X-Linked-Size"] = str(len(data))
        if (range_header := self.headers.get("Range")) and (match := _RANGE.match(range_header.strip())):
            first, last = match.groups()
            if first:
                start, end = int(first), (int(last) + 1 if last else len(data))
            elif last:  # "bytes=-N": the last N bytes
                start = max(len(data) - int(last), 0)
            end = min(end, len(data))
            if start >= len(data) or start >= end:
                self._send(416, {**headers, "Content-Range": f"bytes */{len(data)}"}, b"", send_body)
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        if not send_body:  # HEAD: the headers of the answer a GET would get
            self._send(status, headers, data[start:end], send_body=False)
            return
        path = self.mirror.resolve_path(repo_id, filename, revision)
        with self.mirror._lock:
            self.mirror.ranges.append((path, self.headers.get("Range")))
        cut = len(data) // 2
        if start < cut and self.mirror._take_drop(path):
            self._send(status, headers, data[start:end], send_body, stop_after=cut - start)
            self.close_connection = True  # hang up with the body half sent
            sent = cut - start
        else:
            self._send(status, headers, data[start:end], send_body)
            sent = end - start
        with self.mirror._lock:
            self.mirror.sent_bytes[path] += sent

    # -- responses ----------------------------------------------------------------------------------

    def _json(self, payload, send_body: bool, commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(200, headers, json.dumps(payload).encode(), send_body)

    def _error(self, status: int, code: str | None, message: str, send_body: bool, commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, json.dumps({"error": message}).encode(), send_body)

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, send_body: bool, stop_after: int | None = None
    ) -> None:
        """Answer with `body` (its full length announced); `stop_after` bytes of it only, when given."""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body[:stop_after])
            self.wfile.flush()


class _HeldHandler(_Handler):
    """Sends half of each weights file, then waits until the mirror is released (so progress can be seen)."""

    mirror: HeldHubMirror

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, send_body: bool, stop_after: int | None = None
    ) -> None:
        if not (send_body and status in (200, 206) and self.path.split("?")[0].endswith(".safetensors")):
            super()._send(status, headers, body, send_body)
            return
        super()._send(status, headers, body, send_body=False)  # status line and headers only
        half = len(body) // 2
        self.wfile.write(body[:half])
        self.wfile.flush()
        self.mirror.released.wait(timeout=30)
        self.wfile.write(body[half:])


class HeldHubMirror(HubMirror):
    """A `HubMirror` whose weight downloads stop halfway until `release()` is called."""

    def __init__(self, repos: dict[str, Path | str]) -> None:
        super().__init__(repos)
        self.released = threading.Event()

    def _handler(self) -> type[_Handler]:
        return _HeldHandler

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()  # a held request must not keep a thread waiting
        super().stop()
