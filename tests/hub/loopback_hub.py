"""A loopback Hugging Face Hub for the tests: the HTTP routes huggingface_hub 2.x uses to create a repository,
commit files (regular and LFS) and read them back, served from a folder on disk. Standard library only.

Wire formats follow huggingface_hub's own client code (``hf_api.py``, ``_commit_api.py``, ``lfs.py``,
``file_download.py``): preupload answers ``{"files": [{"path", "uploadMode", "shouldIgnore", "oid"}]}``; the LFS batch
endpoint answers basic-transfer ``upload`` actions whose ``href`` is a PUT on this server; a commit is NDJSON
(``header`` / ``file`` / ``lfsFile`` / ``deletedFile`` / ``deletedFolder`` lines); ``resolve`` answers HEAD and GET
with ``X-Repo-Commit``, ``ETag`` (the git blob id) and, for LFS files, ``X-Linked-Etag`` (the sha256) and
``X-Linked-Size``; errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``).
Xet is not served: clients must run with ``HF_HUB_DISABLE_XET=1``.

State on disk (``root``): ``blobs/<sha256>`` holds every file's content once; ``repos/<org>/<name>.json`` holds the
branches and the commits, each commit with its full file table. Run standalone with
``python tests/hub/loopback_hub.py ROOT [PORT]``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

USER = "loopback-user"
#: Files stored with LFS, as the Hub's default ``.gitattributes`` does (plus anything binary or of 10 MiB or more).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".npy", ".npz", ".gz",
                ".tar", ".zip", ".pkl", ".mp4", ".model")  # fmt: skip
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as ``oid`` / ``ETag`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class HubStorage:
    """Repositories, branches, commits and blobs in a folder; every method takes the one lock."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ blobs
    def blob_path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise HubError(400, f"bad sha256 {sha256!r}")
        return self.root / "blobs" / sha256

    def put_blob(self, content: bytes, expected_sha256: str | None = None) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise HubError(400, f"content has sha256 {sha256}, not {expected_sha256}")
        path = self.blob_path(sha256)
        if not path.exists():
            tmp = path.with_suffix(".tmp-" + str(threading.get_ident()))
            tmp.write_bytes(content)
            tmp.replace(path)
        return sha256

    # ------------------------------------------------------------------ repos
    def _repo_file(self, repo_id: str) -> Path:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise HubError(400, f"bad repo id {repo_id!r}")
        return self.root / "repos" / f"{repo_id}.json"

    def load(self, repo_id: str) -> dict[str, Any]:
        path = self._repo_file(repo_id)
        if not path.is_file():
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return json.loads(path.read_text())

    def save(self, repo_id: str, state: dict[str, Any]) -> None:
        path = self._repo_file(repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)

    def create(self, repo_id: str, private: bool) -> bool:
        """Create a repository with the Hub's initial commit (``.gitattributes``); False when it exists."""
        with self.lock:
            if self._repo_file(repo_id).is_file():
                return False
            state = {"id": repo_id, "private": private, "created_at": _now(), "refs": {}, "commits": {}}
            sha256 = self.put_blob(GITATTRIBUTES)
            files = {".gitattributes": self._entry(GITATTRIBUTES, sha256, lfs=False)}
            self._add_commit(state, "main", None, files, "initial commit", "", author="system")
            self.save(repo_id, state)
            return True

    @staticmethod
    def _entry(content: bytes, sha256: str, lfs: bool) -> dict[str, Any]:
        size = len(content)
        oid = git_blob_oid(lfs_pointer(sha256, size)) if lfs else git_blob_oid(content)
        return {"sha256": sha256, "size": size, "lfs": lfs, "oid": oid}

    @staticmethod
    def _add_commit(state: dict, branch: str, parent: str | None, files: dict, title: str, message: str,
                    author: str = USER) -> str:  # fmt: skip
        date = _now()
        digest = hashlib.sha1(json.dumps([parent, sorted(files.items()), title, message, date]).encode())
        commit_id = digest.hexdigest()
        state["commits"][commit_id] = {"parent": parent, "files": files, "title": title, "message": message,
                                       "date": date, "author": author}  # fmt: skip
        state["refs"][branch] = commit_id
        return commit_id

    def resolve(self, state: dict[str, Any], revision: str) -> str:
        """Commit id of a branch name (``refs/heads/`` optional) or of a full commit id."""
        revision = revision.removeprefix("refs/heads/")
        if revision in state["refs"]:
            return state["refs"][revision]
        if revision in state["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def create_branch(self, repo_id: str, branch: str, starting_point: str | None) -> None:
        with self.lock:
            state = self.load(repo_id)
            if branch in state["refs"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            state["refs"][branch] = self.resolve(state, starting_point or "main")
            self.save(repo_id, state)

    def commit(self, repo_id: str, revision: str, lines: list[dict[str, Any]]) -> str:
        with self.lock:
            state = self.load(repo_id)
            branch = revision.removeprefix("refs/heads/")
            if branch not in state["refs"]:
                raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
            parent = state["refs"][branch]
            header = next((line["value"] for line in lines if line.get("key") == "header"), None)
            if header is None or not header.get("summary"):
                raise HubError(400, "the commit has no header line with a summary")
            if header.get("parentCommit") not in (None, parent):
                raise HubError(412, f"parentCommit {header['parentCommit']} is not the head {parent} of {branch}")
            files = dict(state["commits"][parent]["files"])
            for line in lines:
                key, value = line.get("key"), line.get("value", {})
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"file {value.get('path')}: only base64 content is supported")
                    content = base64.b64decode(value["content"])
                    files[value["path"]] = self._entry(content, self.put_blob(content), lfs=False)
                elif key == "lfsFile":
                    path = self.blob_path(value["oid"])
                    if not path.is_file():
                        raise HubError(400, f"lfsFile {value['path']}: object {value['oid']} was never uploaded")
                    files[value["path"]] = self._entry(path.read_bytes(), value["oid"], lfs=True)
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        raise HubError(404, f"deletedFile {value['path']}: no such file", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: e for p, e in files.items() if not p.startswith(prefix)}
                elif key != "header":
                    raise HubError(400, f"unknown commit operation {key!r}")
            commit_id = self._add_commit(state, branch, parent, files, header["summary"],
                                         header.get("description", ""))  # fmt: skip
            self.save(repo_id, state)
            return commit_id


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackHub

    def log_message(self, format: str, *args: Any) -> None:  # quiet; the request log goes to the server
        self.server.requests.append(f"{self.command} {self.path}")

    # ------------------------------------------------------------------ plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json_body(self) -> Any:
        body = self._body()
        return json.loads(body) if body else {}

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = parse_qs(url.query)
        try:
            if self.command == "POST":  # LFS PUTs go to a pre-signed URL, as on the Hub (S3): no token
                self.server.check_auth(self.headers.get("Authorization"))
            handled = self._route(parts, query)
            if not handled:
                raise HubError(404, f"no route for {self.command} {url.path}")
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send_json({"error": error.message, **error.extra}, error.status, headers)

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    # ------------------------------------------------------------------ routes
    def _route(self, parts: list[str], query: dict[str, list[str]]) -> bool:
        storage, method = self.server.storage, self.command
        if parts[:2] == ["api", "whoami-v2"] and method == "GET":
            self._send_json({"type": "user", "name": USER, "fullname": "Loopback User", "orgs": [],
                             "auth": {"type": "access_token",
                                      "accessToken": {"displayName": "loopback", "role": "write"}}})  # fmt: skip
            return True
        if parts[:3] == ["api", "repos", "create"] and method == "POST":
            payload = self._json_body()
            if payload.get("type", "model") != "model":
                raise HubError(400, "the loopback Hub serves model repositories only")
            repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
            if not storage.create(repo_id, payload.get("visibility") == "private" or bool(payload.get("private"))):
                raise HubError(409, "You already created this model repo", url=f"{self.server.url}/{repo_id}")
            self._send_json({"url": f"{self.server.url}/{repo_id}", "name": repo_id, "id": repo_id})
            return True
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            content = self._json_body().get("content", "")
            match = re.match(r"^---\n(.*?)\n---", content, flags=re.DOTALL)
            try:
                metadata = yaml.safe_load(match.group(1)) if match else None
            except yaml.YAMLError as error:
                raise HubError(400, f"Invalid metadata in README.md: {error}") from None
            warnings = [] if metadata else [{"message": "Empty or missing yaml metadata in repo card"}]
            self._send_json({"errors": [], "warnings": warnings})
            return True
        if len(parts) >= 4 and parts[0] == "api" and parts[1] == "models":
            return self._api_model_route(f"{parts[2]}/{parts[3]}", parts[4:], query)
        if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(f"{parts[0]}/{parts[1][:-4]}")
        if parts[:1] == ["lfs-upload"] and len(parts) == 2 and method == "PUT":
            storage.put_blob(self._body(), expected_sha256=parts[1])
            self._send(200, b"", content_type="text/plain")
            return True
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            return True
        return False

    def _api_model_route(self, repo_id: str, rest: list[str], query: dict[str, list[str]]) -> bool:
        storage, method = self.server.storage, self.command
        if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
            state = storage.load(repo_id)
            files = storage.load(repo_id)["commits"][storage.resolve(state, rest[1])]["files"]
            answer = []
            for item in self._json_body()["files"]:
                sample = base64.b64decode(item["sample"])
                lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE or b"\0" in sample
                current = files.get(item["path"])
                remote_oid = None if current is None else (current["sha256"] if current["lfs"] else current["oid"])
                answer.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                               "oid": remote_oid})  # fmt: skip
            self._send_json({"files": answer, "commitOid": state["refs"].get(rest[1])})
            return True
        if method == "POST" and len(rest) == 2 and rest[0] == "commit":
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            commit_id = storage.commit(repo_id, rest[1], lines)
            self._send_json({"success": True, "commitOid": commit_id, "pullRequestUrl": None,
                             "commitUrl": f"{self.server.url}/{repo_id}/commit/{commit_id}"})  # fmt: skip
            return True
        if method == "POST" and len(rest) == 2 and rest[0] == "branch":
            storage.create_branch(repo_id, rest[1], self._json_body().get("startingPoint"))
            self._send_json({})
            return True
        if method != "GET":
            return False
        state = storage.load(repo_id)
        if not rest or (len(rest) == 2 and rest[0] == "revision"):
            commit_id = storage.resolve(state, rest[1] if rest else "main")
            self._send_json(self.server.model_info(repo_id, state, commit_id))
            return True
        if len(rest) >= 2 and rest[0] == "tree":
            commit_id = storage.resolve(state, rest[1])
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            self._send_json(self.server.tree(state["commits"][commit_id]["files"], "/".join(rest[2:]), recursive))
            return True
        if len(rest) == 2 and rest[0] == "commits":
            commit_id, history = storage.resolve(state, rest[1]), []
            while commit_id is not None:
                commit = state["commits"][commit_id]
                history.append({"id": commit_id, "title": commit["title"], "message": commit["message"],
                                "authors": [{"user": commit["author"]}], "date": commit["date"]})  # fmt: skip
                commit_id = commit["parent"]
            self._send_json(history)
            return True
        return False

    def _lfs_batch(self, repo_id: str) -> bool:
        storage = self.server.storage
        storage.load(repo_id)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "the loopback Hub's LFS batch endpoint serves uploads only")
        objects = []
        for item in payload["objects"]:
            entry = {"oid": item["oid"], "size": item["size"]}
            if not storage.blob_path(item["oid"]).is_file():  # no actions: already stored
                entry["actions"] = {"upload": {"href": f"{self.server.url}/lfs-upload/{item['oid']}", "header": {}}}
            objects.append(entry)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})
        return True

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        storage = self.server.storage
        state = storage.load(repo_id)
        commit_id = storage.resolve(state, revision)
        entry = state["commits"][commit_id]["files"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit_id, "ETag": f'"{entry["oid"]}"', "Accept-Ranges": "none"}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["sha256"]}"', "X-Linked-Size": str(entry["size"])})
        content = storage.blob_path(entry["sha256"]).read_bytes()
        self._send(200, content, headers, content_type="application/octet-stream")


class LoopbackHub(ThreadingHTTPServer):
    """``LoopbackHub(root)`` binds 127.0.0.1 on a free port; ``start()`` serves in a daemon thread."""

    daemon_threads = True

    def __init__(self, root: str | Path, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), HubHandler)
        self.storage = HubStorage(root)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[str] = []
        self._thread: threading.Thread | None = None

    def check_auth(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")

    def model_info(self, repo_id: str, state: dict, commit_id: str) -> dict[str, Any]:
        files = state["commits"][commit_id]["files"]
        card_data: dict[str, Any] = {}
        if "README.md" in files:
            text = self.storage.blob_path(files["README.md"]["sha256"]).read_text(encoding="utf-8")
            match = re.match(r"^---\n(.*?)\n---", text, flags=re.DOTALL)
            card_data = (yaml.safe_load(match.group(1)) or {}) if match else {}
        config: dict[str, Any] = {}
        if "config.json" in files:
            config = json.loads(self.storage.blob_path(files["config.json"]["sha256"]).read_bytes())
        siblings = [{"rfilename": path, "size": e["size"], "blobId": e["oid"],
                     **({"lfs": {"sha256": e["sha256"], "size": e["size"], "pointerSize": 134}} if e["lfs"] else {})}
                    for path, e in sorted(files.items())]  # fmt: skip
        return {
            "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "author": repo_id.split("/")[0], "sha": commit_id, "private": state["private"], "disabled": False,
            "gated": False, "downloads": 0, "likes": 0, "tags": list(card_data.get("tags") or []),
            "pipeline_tag": card_data.get("pipeline_tag"), "library_name": card_data.get("library_name"),
            "createdAt": state["created_at"], "lastModified": state["commits"][commit_id]["date"],
            "cardData": card_data or None, "config": {k: config[k] for k in ("model_type", "architectures",
                                                                           "auto_map") if k in config} or None,
            "siblings": siblings,
        }  # fmt: skip

    @staticmethod
    def tree(files: dict[str, dict], folder: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        if prefix and not any(path.startswith(prefix) for path in files):
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        out, folders = [], set()
        for path, e in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                entry = {"type": "file", "path": path, "size": e["size"], "oid": e["oid"]}
                if e["lfs"]:
                    entry["lfs"] = {"oid": e["sha256"], "size": e["size"], "pointerSize": 134}
                out.append(entry)
        dirs = [{"type": "directory", "path": p, "size": 0, "oid": hashlib.sha1(p.encode()).hexdigest()}
                for p in sorted(folders)]  # fmt: skip
        return dirs + out

    def start(self) -> LoopbackHub:
        self._thread = threading.Thread(target=self.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


if __name__ == "__main__":
    hub = LoopbackHub(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(hub.url, flush=True)
    hub.serve_forever()
