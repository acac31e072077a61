"""A loopback stand-in for the part of the Hugging Face Hub HTTP API that huggingface_hub 0.36 uses to push and load.

Runs ``http.server`` in a thread on 127.0.0.1 (random port) and keeps what it receives on disk under ``root``:

    root/objects/<git blob sha1>          small files committed inline (base64 in the commit's ndjson)
    root/lfs/<sha256>                     large files received through the LFS batch route
    root/repos/<owner>/<name>/<branch>/   each branch's files as of its last commit (for people to look at)

Every request is recorded as ``(METHOD, route)`` so tests can list the endpoints the client used. Routes:

    POST /api/repos/create                               create a model repo (409 if it exists)
    POST /api/validate-yaml                              the card's front matter must parse; base_model must be a Hub id
    POST /api/models/{repo}/preupload/{rev}              "lfs" for LFS_SUFFIXES or files over 10 MB, else "regular"
    POST /api/models/{repo}/commit/{rev}                 ndjson: header, file (base64), lfsFile (must be uploaded)
    POST /api/models/{repo}/branch/{branch}              create a branch from main
    GET  /api/models/{repo}[/revision/{rev}]             repo info: sha, private, siblings
    GET  /api/models/{repo}/tree/{rev}[/{path}]          list a folder (recursive=true/false; one page)
    POST /{repo}.git/info/lfs/objects/batch              LFS batch API (basic transfer; upload + verify actions)
    PUT  /lfs-upload/{oid}                               the upload URL the batch hands out (sha256 checked)
    POST /{repo}.git/info/lfs/objects/verify             LFS verify
    HEAD/GET /{repo}/resolve/{rev}/{path}                download, with X-Repo-Commit / ETag / X-Linked-* headers

Writes need ``Authorization: Bearer <token>`` (401 otherwise; 403 for all writes when ``refuse_writes``);
private repos read as missing without it. Bodies are capped at ``max_body`` bytes.

Not covered (the real Hub does these; the client paths behind them are not exercised here): the Xet storage route
(the LFS batch always answers "basic"), multipart LFS uploads (files over the multipart threshold), signed CDN
redirects on download (files are served directly, so no 302 / relative-redirect handling), Range requests and
resumed downloads, pull requests (``create_pr``), skipping unchanged files (preupload returns no remote oid),
pagination of tree listings, gated repos, dataset and space repos, tags, deletions through folder patterns,
the ``/api/whoami-v2`` call behind ``hf auth``, rate limiting and retries, and real token scopes (one token, full rights).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".onnx")
LFS_THRESHOLD = 10 * 2**20
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.onnx filter=lfs diff=lfs merge=lfs -text\n"


@dataclass
class Entry:
    size: int
    git_oid: str  # sha1 of the git blob
    lfs_oid: str | None  # sha256 when stored through LFS
    stored: Path


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, Entry]] = field(default_factory=dict)  # commit sha -> tree
    messages: dict[str, str] = field(default_factory=dict)  # commit sha -> summary


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    """Start with ``with HubServer(root, token) as hub:``; ``hub.url`` is the endpoint to point HF_ENDPOINT at."""

    def __init__(self, root: Path, token: str, *, lfs_suffixes: tuple[str, ...] = LFS_SUFFIXES, max_body: int = 64 * 2**20):
        self.root = Path(root)
        self.token = token
        self.lfs_suffixes = lfs_suffixes
        self.max_body = max_body
        self.refuse_writes = False
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for sub in ("objects", "lfs", "repos"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- what tests look at ----------------------------------------------------------------------------------
    def routes_used(self) -> list[str]:
        return sorted({f"{method} {route}" for method, route in self.requests})

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        tree = repo.commits[repo.branches[revision]]
        return {path: entry.stored.read_bytes() for path, entry in tree.items()}

    def tree(self, repo_id: str, revision: str = "main") -> dict[str, Entry]:
        repo = self.repos[repo_id]
        return repo.commits[repo.branches[revision]]

    def last_message(self, repo_id: str, revision: str = "main") -> str:
        repo = self.repos[repo_id]
        return repo.messages[repo.branches[revision]]

    # -- state changes (called under the lock) ---------------------------------------------------------------
    def _store(self, data: bytes) -> Entry:
        oid = git_blob_oid(data)
        path = self.root / "objects" / oid
        if not path.exists():
            path.write_bytes(data)
        return Entry(len(data), oid, None, path)

    def _commit(self, repo: Repo, branch: str, tree: dict[str, Entry], message: str) -> str:
        parent = repo.branches.get(branch, "")
        digest = hashlib.sha1(parent.encode() + message.encode() + str(time.time_ns()).encode())
        for path in sorted(tree):
            digest.update(f"{path}:{tree[path].git_oid}".encode())
        sha = digest.hexdigest()
        repo.commits[sha], repo.branches[branch], repo.messages[sha] = tree, sha, message
        self._materialize(repo, branch)
        return sha

    def _materialize(self, repo: Repo, branch: str) -> None:
        folder = self.root / "repos" / repo.repo_id / branch
        shutil.rmtree(folder, ignore_errors=True)
        for path, entry in repo.commits[repo.branches[branch]].items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry.stored, folder / path)


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    timeout = 30  # a stalled client cannot hold a thread forever
    server_version = "loopback-hub/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: tests read hub.requests instead (and headers, which carry the token, are never logged)

    # -- plumbing --------------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        raw_path = urlsplit(self.path).path
        parts = [unquote(p) for p in raw_path.strip("/").split("/")]
        route, handler, args = _route(method, parts)
        with hub._lock:
            hub.requests.append((method, route))
            if handler is None:
                hub.unknown.append((method, raw_path))
        if handler is None:
            return self._send(404, {"error": f"no route {method} {raw_path}"})
        try:
            body = self._body()
            status, payload, headers = handler(self, body, *args)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            return self._send(err.status, {"error": err.message}, headers)
        self._send(status, payload, headers)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                total += size
                if total > self.hub.max_body:
                    raise HubError(413, "body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.hub.max_body:
            raise HubError(413, "body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, bytes):
            data, ctype = payload, "application/octet-stream"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        headers = {"Content-Type": ctype, "Content-Length": str(len(data)), **(headers or {})}
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _write_access(self) -> None:
        if not self.headers.get("Authorization"):
            raise HubError(401, "Invalid username or password.")
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header")
        if self.hub.refuse_writes:
            raise HubError(403, "You don't have the rights to create a model under this namespace")

    def _repo(self, repo_id: str, *, write: bool = False) -> Repo:
        repo = self.hub.repos.get(repo_id)
        # The Hub answers "not found" for a private repo you cannot see.
        if repo is None or (repo.private and not self._authorized()):
            raise HubError(404, "Repository not found", "RepoNotFound")
        if write:
            self._write_access()
        return repo

    def _revision(self, repo: Repo, revision: str) -> str:
        if revision in repo.branches:
            return repo.branches[revision]
        if revision in repo.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _json(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"invalid JSON: {err}") from err

    # -- endpoints -------------------------------------------------------------------------------------------
    def create_repo(self, body: bytes) -> tuple[int, Any, dict]:
        self._write_access()
        req = self._json(body)
        if req.get("type", "model") != "model":
            raise HubError(400, "only model repos here")
        repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else f"user/{req['name']}"
        with self.hub._lock:
            if repo_id in self.hub.repos:
                raise HubError(409, "You already created this model repo")
            repo = Repo(repo_id, bool(req.get("private", False)))
            self.hub.repos[repo_id] = repo
            self.hub._commit(repo, "main", {".gitattributes": self.hub._store(GITATTRIBUTES)}, "initial commit")
        return 200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": repo_id}, {}

    def validate_yaml(self, body: bytes) -> tuple[int, Any, dict]:
        content = self._json(body).get("content", "")
        errors = []
        if content.startswith("---\n"):
            front = content[4:].split("\n---", 1)[0]
            try:
                meta = yaml.safe_load(front) or {}
            except yaml.YAMLError as err:
                meta, errors = {}, [{"message": f"invalid YAML: {err}"}]
            base = meta.get("base_model")
            for name in [base] if isinstance(base, str) else base or []:
                if name.startswith(("/", ".", "~")) or name.count("/") > 1:
                    errors.append({"message": f'"base_model" must be a Hub model id, got {name!r}'})
        if errors:
            return 400, {"errors": errors, "warnings": []}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def preupload(self, body: bytes, repo_id: str, revision: str) -> tuple[int, Any, dict]:
        repo = self._repo(repo_id, write=True)
        self._revision(repo, revision)
        files = []
        for item in self._json(body).get("files", []):
            lfs = item["path"].endswith(self.hub.lfs_suffixes) or item["size"] > LFS_THRESHOLD
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        return 200, {"files": files}, {}

    def commit(self, body: bytes, repo_id: str, revision: str) -> tuple[int, Any, dict]:
        repo = self._repo(repo_id, write=True)
        if self.headers.get("Content-Type") != "application/x-ndjson":
            raise HubError(400, "expected application/x-ndjson")
        if "create_pr=" in self.path:
            raise HubError(400, "pull requests are not supported by the loopback hub")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first ndjson line must be the header")
        header = lines[0]["value"]
        with self.hub._lock:
            if revision not in repo.branches:  # commits go onto a branch, never onto a bare commit id
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            head = repo.branches[revision]
            if header.get("parentCommit") not in (None, head):
                raise HubError(412, "parentCommit is not the head of the branch")
            tree = dict(repo.commits[head])
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"unsupported encoding for {value['path']}")
                    tree[value["path"]] = self.hub._store(base64.b64decode(value["content"]))
                elif key == "lfsFile":
                    stored = self.hub.root / "lfs" / value["oid"]
                    if value.get("algo") != "sha256" or not stored.is_file() or stored.stat().st_size != value["size"]:
                        raise HubError(422, f"LFS object for {value['path']} was not uploaded")
                    data = stored.read_bytes()
                    tree[value["path"]] = Entry(value["size"], git_blob_oid(data), value["oid"], stored)
                elif key == "deletedFile":
                    if tree.pop(value["path"], None) is None:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    tree = {p: e for p, e in tree.items() if not p.startswith(prefix)}
                else:
                    raise HubError(400, f"unsupported commit operation {key!r}")
            sha = self.hub._commit(repo, revision, tree, header.get("summary", ""))
        url = f"{self.hub.url}/{repo_id}/commit/{sha}"
        return 200, {"commitUrl": url, "commitOid": sha, "pullRequestUrl": None}, {}

    def create_branch(self, body: bytes, repo_id: str, branch: str) -> tuple[int, Any, dict]:
        repo = self._repo(repo_id, write=True)
        start = self._json(body).get("startingPoint") or "main"
        with self.hub._lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            repo.branches[branch] = self._revision(repo, start)
            self.hub._materialize(repo, branch)
        return 200, {}, {}

    def repo_info(self, body: bytes, repo_id: str, revision: str = "main") -> tuple[int, Any, dict]:
        repo = self._repo(repo_id)
        sha = self._revision(repo, revision)
        siblings = [{"rfilename": path} for path in sorted(repo.commits[sha])]
        info = {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private, "siblings": siblings, "tags": []}
        return 200, info, {}

    def list_tree(self, body: bytes, repo_id: str, revision: str, folder: str = "") -> tuple[int, Any, dict]:
        repo = self._repo(repo_id)
        tree = repo.commits[self._revision(repo, revision)]
        recursive = "recursive=true" in self.path.lower() or "recursive=1" in self.path
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        files, folders = [], set()
        for path in sorted(tree):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):  # the folders on the way
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                entry = tree[path]
                item = {"type": "file", "path": path, "size": entry.size, "oid": entry.git_oid}
                if entry.lfs_oid:
                    item["lfs"] = {"oid": entry.lfs_oid, "size": entry.size, "pointerSize": 134}
                files.append(item)
        if prefix and not files and not folders:
            raise HubError(404, f"{folder} does not exist on {revision}", "EntryNotFound")
        dirs = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(folders)]
        return 200, dirs + files, {}

    def lfs_batch(self, body: bytes, repo_id: str) -> tuple[int, Any, dict]:
        self._repo(repo_id, write=True)
        req = self._json(body)
        if req.get("operation") != "upload" or "basic" not in req.get("transfers", ["basic"]):
            raise HubError(400, "only basic uploads are supported by the loopback hub")
        objects = []
        for obj in req.get("objects", []):
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not (self.hub.root / "lfs" / obj["oid"]).is_file():
                item["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/{repo_id}.git/info/lfs/objects/verify", "header": {}},
                }
            objects.append(item)
        return 200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"}

    def lfs_upload(self, body: bytes, oid: str) -> tuple[int, Any, dict]:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "content does not match the oid")
        (self.hub.root / "lfs" / oid).write_bytes(body)
        return 200, b"", {}

    def lfs_verify(self, body: bytes, repo_id: str) -> tuple[int, Any, dict]:
        self._repo(repo_id, write=True)
        req = self._json(body)
        stored = self.hub.root / "lfs" / req.get("oid", "")
        if not stored.is_file() or stored.stat().st_size != req.get("size"):
            raise HubError(404, "object not found")
        return 200, {}, {}

    def resolve(self, body: bytes, repo_id: str, revision: str, path: str) -> tuple[int, Any, dict]:
        repo = self._repo(repo_id)
        sha = self._revision(repo, revision)
        entry = repo.commits[sha].get(path)
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.git_oid}"'}
        if entry.lfs_oid:  # what the Hub sends for LFS files (the client prefers these)
            headers.update({"X-Linked-Etag": f'"{entry.lfs_oid}"', "X-Linked-Size": str(entry.size)})
        return 200, entry.stored.read_bytes(), headers


def _route(method: str, parts: list[str]) -> tuple[str, Any, tuple]:
    """(route template, handler, handler args) for a request path split into unquoted segments."""
    h = _Handler
    n = len(parts)
    if parts[:1] == ["api"]:
        if method == "POST" and parts == ["api", "repos", "create"]:
            return "/api/repos/create", h.create_repo, ()
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return "/api/validate-yaml", h.validate_yaml, ()
        if n >= 4 and parts[1] == "models":
            repo_id, rest = f"{parts[2]}/{parts[3]}", parts[4:]
            if method == "GET" and not rest:
                return "/api/models/{repo}", h.repo_info, (repo_id,)
            if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                return "/api/models/{repo}/revision/{rev}", h.repo_info, (repo_id, rest[1])
            if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                return "/api/models/{repo}/tree/{rev}/{path}", h.list_tree, (repo_id, rest[1], "/".join(rest[2:]))
            if method == "POST" and len(rest) == 2 and rest[0] in ("preupload", "commit", "branch"):
                handler = {"preupload": h.preupload, "commit": h.commit, "branch": h.create_branch}[rest[0]]
                arg = "branch" if rest[0] == "branch" else "rev"
                return f"/api/models/{{repo}}/{rest[0]}/{{{arg}}}", handler, (repo_id, rest[1])
        return "(unknown)", None, ()
    if method == "PUT" and n == 2 and parts[0] == "lfs-upload":
        return "/lfs-upload/{oid}", h.lfs_upload, (parts[1],)
    if method == "POST" and n == 6 and parts[1].endswith(".git") and parts[2:5] == ["info", "lfs", "objects"]:
        repo_id = f"{parts[0]}/{parts[1][: -len('.git')]}"
        if parts[5] == "batch":
            return "/{repo}.git/info/lfs/objects/batch", h.lfs_batch, (repo_id,)
        if parts[5] == "verify":
            return "/{repo}.git/info/lfs/objects/verify", h.lfs_verify, (repo_id,)
    if method in ("HEAD", "GET") and n >= 5 and parts[2] == "resolve":
        return "/{repo}/resolve/{rev}/{path}", h.resolve, (f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
    return "(unknown)", None, ()


def use_loopback_hub(monkeypatch: Any, url: str, cache_dir: Path) -> None:
    """Point huggingface_hub, transformers and peft at ``url``, with a private download cache.

    huggingface_hub reads HF_ENDPOINT (and the cache and offline settings) once, at import, into module
    constants, and builds download URLs from a template made then; the module-level ``api`` (behind
    ``file_exists``, which peft calls) keeps the endpoint it was created with. So setting the variable is not
    enough once the library is imported: each copy is patched too.
    """
    import huggingface_hub.constants as constants
    import huggingface_hub.file_download as file_download
    import huggingface_hub.hf_api as hf_api
    import transformers.utils.hub as transformers_hub

    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(transformers_hub, "_is_offline_mode", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setattr(transformers_hub, "TRANSFORMERS_CACHE", str(cache_dir))
    # A login on this machine must not stand in for the test's token (nor be touched).
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache_dir / "no-such-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(cache_dir / "no-such-stored-tokens"))
