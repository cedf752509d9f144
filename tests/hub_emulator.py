"""A Hugging Face Hub emulator on 127.0.0.1 for the tests: the routes `huggingface_hub` 2.x calls to create a
repository, read its info, refs and tree, upload through the preupload / LFS batch / commit protocol (basic and
multipart LFS transfers, regular files inlined in the commit), tag, and download (`/resolve/`).

Followed huggingface_hub's own client code (hf_api.py create_repo, dataset_info, list_repo_refs,
list_repo_tree, list_repo_commits, create_tag, _validate_yaml; _commit_api.py _fetch_upload_modes and
_send_commit; lfs.py post_lfs_batch_info and lfs_upload; file_download.py get_hf_file_metadata and http_get;
utils/_http.py hf_raise_for_status, which maps X-Error-Code headers to exceptions). It speaks the LFS protocol,
not Xet: a test turns Xet off (`huggingface_hub.constants.HF_HUB_DISABLE_XET`), as HF_HUB_DISABLE_XET=1 would.

State lives in memory: repositories with commits (a full file map each), branches, tags and LFS objects.
`fail(...)` injects errors (a 4xx is not retried by the client, so an upload stops at once), and `requests`
records every call (method, path, status) for the tests to inspect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".parquet", ".png", ".jpg", ".jpeg", ".arrow", ".bin", ".zip", ".gz", ".zst")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()
_REPO = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class StoredFile:
    """A file at a commit: inline content (regular) or an LFS object's sha256 and size."""

    size: int
    content: bytes | None = None
    lfs_sha256: str | None = None

    @property
    def blob_oid(self) -> str:
        if self.lfs_sha256 is not None:
            return git_blob_oid(lfs_pointer(self.lfs_sha256, self.size))
        assert self.content is not None
        return git_blob_oid(self.content)


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    files: dict[str, StoredFile]
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)
    parts: dict[str, dict[int, bytes]] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and revision in self.commits:
            oid = revision
        return self.commits.get(oid) if oid else None


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    after: int


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubEmulator:
    """Start with `HubEmulator(tokens={"hf_x": "alice"}).start()`; `endpoint` is the HF_ENDPOINT to use."""

    def __init__(self, tokens: dict[str, str], orgs: dict[str, set[str]] | None = None, chunk_size: int = 0) -> None:
        self.tokens = tokens  # token -> user name
        self.orgs = orgs or {}  # org -> members
        self.chunk_size = chunk_size  # > 0: objects larger than this are uploaded in parts (multipart transfer)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HubEmulator:
        emulator = self

        class Handler(_Handler):
            hub = emulator

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        server.request_queue_size = 128
        server.daemon_threads = True
        server.server_bind()
        server.server_activate()
        self._server = server
        threading.Thread(target=server.serve_forever, name="hub-emulator", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ test helpers
    def fail(self, method: str, path_pattern: str, status: int = 403, times: int = 1, after: int = 0) -> None:
        """Answer the matching requests after the first `after` ones with `status`, `times` times."""
        with self.lock:
            self.faults.append(Fault(method, re.compile(path_pattern), status, times, after))

    def calls(self, method: str, path_pattern: str) -> list[tuple[str, str, int]]:
        """The recorded requests of `method` whose path matches."""
        pattern = re.compile(path_pattern)
        return [call for call in self.requests if call[0] == method and pattern.search(call[1])]

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.times > 0 and fault.pattern.search(path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def _new_oid(self, *parts: str) -> str:
        self._counter += 1
        return hashlib.sha1("\x1f".join([str(self._counter), *parts]).encode()).hexdigest()

    # ------------------------------------------------------------------ auth
    def user(self, headers: Any) -> str | None:
        auth = headers.get("Authorization") or ""
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        user = self.tokens.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self.orgs.get(namespace, set()))

    def readable(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self.can_write(user, repo_id.split("/")[0])):
            raise HubError(404 if user else 401, "Repository not found", "RepoNotFound")
        return repo

    def writable(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        if user is None:
            raise HubError(401, "You must be authenticated to write", "RepoNotFound")
        repo = self.readable(repo_type, repo_id, user)
        if not self.can_write(user, repo_id.split("/")[0]):
            raise HubError(403, "You don't have the rights to write to this repository")
        return repo


class _Handler(BaseHTTPRequestHandler):
    hub: HubEmulator
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ------------------------------------------------------------------ plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head and self.command != "HEAD":  # a HEAD answer never has a body, errors included
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        raw_path = urlsplit(self.path).path
        query = parse_qs(urlsplit(self.path).query)
        body = self._body() if method in ("POST", "PUT") else b""
        status = 500
        try:
            fault = hub._fault(method, raw_path)
            if fault is not None:
                raise HubError(fault.status, f"injected fault on {method} {raw_path}")
            with hub.lock:
                status = self._route(method, raw_path, query, body)
        except HubError as error:
            status = error.status
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._json(error.status, {"error": error.message}, headers)
        except Exception as error:  # a bug in the emulator: answer 501 (not retried), so the client fails at once
            status = 501
            self._json(501, {"error": f"emulator error: {error!r}"}, {"X-Error-Message": "emulator error"})
        finally:
            hub.requests.append((method, raw_path, status))

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> int:
        hub = self.hub
        user = hub.user(self.headers)
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"^/api/repos/create$", self._create_repo),
            ("GET", r"^/api/whoami-v2$", self._whoami),
            ("POST", r"^/api/validate-yaml$", self._validate_yaml),
            ("GET", rf"^/api/{_REPO}(?:/revision/(?P<rev>[^/]+))?$", self._repo_info),
            ("GET", rf"^/api/{_REPO}/refs$", self._refs),
            ("GET", rf"^/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$", self._tree),
            ("GET", rf"^/api/{_REPO}/commits/(?P<rev>[^/]+)$", self._commits),
            ("POST", rf"^/api/{_REPO}/preupload/(?P<rev>[^/]+)$", self._preupload),
            ("POST", rf"^/api/{_REPO}/commit/(?P<rev>[^/]+)$", self._commit),
            ("POST", rf"^/api/{_REPO}/tag/(?P<rev>[^/]+)$", self._tag),
            ("POST", rf"^/{_REPO}\.git/info/lfs/objects/batch$", self._lfs_batch),
            ("PUT", r"^/_lfs/(?P<key>[^/]+)/(?P<oid>[0-9a-f]{64})$", self._lfs_put),
            ("PUT", r"^/_lfs/(?P<key>[^/]+)/(?P<oid>[0-9a-f]{64})/part/(?P<part>\d+)$", self._lfs_part),
            ("POST", r"^/_lfs/(?P<key>[^/]+)/(?P<oid>[0-9a-f]{64})/complete$", self._lfs_complete),
            ("POST", r"^/_lfs/(?P<key>[^/]+)/(?P<oid>[0-9a-f]{64})/verify$", self._lfs_verify),
            ("GET", rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", self._resolve),
            ("HEAD", rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", self._resolve),
        ]
        for route_method, pattern, handler in routes:
            match = re.match(pattern, path)
            if route_method == method and match:
                groups = {key: value for key, value in match.groupdict().items() if value is not None}
                return handler(user=user, query=query, body=body, head=method == "HEAD", **groups)
        raise HubError(404, f"no route for {method} {path}")

    # ------------------------------------------------------------------ repositories
    def _create_repo(self, user: str | None, body: bytes, **_: Any) -> int:
        hub = self.hub
        payload = json.loads(body)
        namespace = payload.get("organization") or user
        if user is None or namespace is None:
            raise HubError(401, "You must be authenticated to create a repository")
        if not hub.can_write(user, namespace):
            raise HubError(403, f"You don't have the rights to create a repository under {namespace}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload['name']}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{hub.endpoint}/{prefix}{repo_id}"
        if (repo_type, repo_id) in hub.repos:
            self._json(409, {"error": "You already created this repo", "url": url})
            return 409
        private = payload.get("visibility") == "private" if "visibility" in payload else bool(payload.get("private"))
        repo = Repo(repo_type, repo_id, private)
        initial = Commit(
            hub._new_oid(repo_id),
            None,
            "initial commit",
            "",
            {".gitattributes": StoredFile(len(GITATTRIBUTES), GITATTRIBUTES)},
            _now(),
        )
        repo.commits[initial.oid] = initial
        repo.branches["main"] = initial.oid
        hub.repos[(repo_type, repo_id)] = repo
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})
        return 200

    def _whoami(self, user: str | None, **_: Any) -> int:
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        self._json(200, {"type": "user", "name": user, "orgs": [{"name": org} for org in sorted(self.hub.orgs)]})
        return 200

    def _validate_yaml(self, body: bytes, **_: Any) -> int:
        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        if match:
            try:
                metadata = yaml.safe_load(match.group(1))
            except yaml.YAMLError as error:
                self._json(400, {"errors": [{"message": f"invalid YAML: {error}"}], "warnings": []})
                return 400
            if not isinstance(metadata, dict):
                self._json(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
                return 400
        self._json(200, {"errors": [], "warnings": []})
        return 200

    def _repo_info(self, user: str | None, type: str, repo: str, rev: str = "main", **_: Any) -> int:
        stored = self.hub.readable(type, repo, user)
        commit = _commit_or_404(stored, unquote(rev))
        self._json(
            200,
            {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                "author": repo.split("/")[0],
                "sha": commit.oid,
                "private": stored.private,
                "lastModified": commit.date,
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
                "tags": [],
            },
        )
        return 200

    def _refs(self, user: str | None, type: str, repo: str, **_: Any) -> int:
        stored = self.hub.readable(type, repo, user)
        self._json(
            200,
            {
                "branches": [
                    {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                    for name, oid in sorted(stored.branches.items())
                ],
                "converts": [],
                "tags": [
                    {"name": name, "ref": f"refs/tags/{name}", "targetCommit": oid}
                    for name, oid in sorted(stored.tags.items())
                ],
                "pullRequests": [],
            },
        )
        return 200

    def _tree(
        self, user: str | None, query: dict[str, list[str]], type: str, repo: str, rev: str, path: str = "", **_: Any
    ) -> int:
        stored = self.hub.readable(type, repo, user)
        commit = _commit_or_404(stored, unquote(rev))
        base = unquote(path).strip("/")
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        prefix = f"{base}/" if base else ""
        entries: dict[str, dict[str, Any]] = {}
        for file_path, stored_file in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        folder, {"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(), "path": folder}
                    )
            if recursive or len(parts) == 1:
                entries[file_path] = _tree_entry(file_path, stored_file)
        if base and not entries and base not in commit.files:
            raise HubError(404, f"{base} does not exist at {rev}", "EntryNotFound")
        self._json(200, list(entries.values()))
        return 200

    def _commits(self, user: str | None, type: str, repo: str, rev: str, **_: Any) -> int:
        stored = self.hub.readable(type, repo, user)
        commit: Commit | None = _commit_or_404(stored, unquote(rev))
        history = []
        while commit is not None:
            history.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": repo.split("/")[0]}],
                    "date": commit.date,
                }
            )
            commit = stored.commits.get(commit.parent) if commit.parent else None
        self._json(200, history)
        return 200

    # ------------------------------------------------------------------ uploads
    def _preupload(self, user: str | None, body: bytes, type: str, repo: str, rev: str, **_: Any) -> int:
        stored = self.hub.writable(type, repo, user)
        commit = _commit_or_404(stored, unquote(rev))
        files = []
        for entry in json.loads(body)["files"]:
            sample = base64.b64decode(entry["sample"])
            lfs = entry["path"].endswith(LFS_SUFFIXES) or entry["size"] >= LFS_MIN_SIZE or b"\0" in sample
            existing = commit.files.get(entry["path"])
            oid = None
            if existing is not None:
                oid = existing.lfs_sha256 if lfs and existing.lfs_sha256 else existing.blob_oid
            files.append(
                {"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._json(200, {"files": files, "commitOid": commit.oid})
        return 200

    def _lfs_batch(self, user: str | None, body: bytes, type: str, repo: str, **_: Any) -> int:
        hub = self.hub
        stored = hub.writable(type, repo, user)
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "only upload operations with the basic transfer are supported")
        key = hashlib.sha1(f"{type}/{repo}".encode()).hexdigest()[:16]
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in stored.lfs:  # already stored: no actions, the client skips the upload
                base = f"{hub.endpoint}/_lfs/{key}/{oid}"
                verify = {"href": f"{base}/verify", "header": {}}
                if hub.chunk_size and size > hub.chunk_size:
                    parts = -(-size // hub.chunk_size)
                    header = {"chunk_size": str(hub.chunk_size)}
                    header |= {str(n): f"{base}/part/{n}" for n in range(1, parts + 1)}
                    entry["actions"] = {"upload": {"href": f"{base}/complete", "header": header}, "verify": verify}
                else:
                    entry["actions"] = {"upload": {"href": base, "header": {}}, "verify": verify}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})
        return 200

    def _object_repo(self, key: str) -> Repo:
        for repo in self.hub.repos.values():
            if hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:16] == key:
                return repo
        raise HubError(404, "unknown upload target")

    def _lfs_put(self, body: bytes, key: str, oid: str, **_: Any) -> int:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"content does not match its oid {oid}")
        self._object_repo(key).lfs[oid] = body
        self._send(200)
        return 200

    def _lfs_part(self, body: bytes, key: str, oid: str, part: str, **_: Any) -> int:
        self._object_repo(key).parts.setdefault(oid, {})[int(part)] = body
        self._send(200, headers={"ETag": hashlib.md5(body).hexdigest()})
        return 200

    def _lfs_complete(self, body: bytes, key: str, oid: str, **_: Any) -> int:
        repo = self._object_repo(key)
        payload = json.loads(body)
        parts = repo.parts.pop(oid, {})
        numbers = [part["partNumber"] for part in payload["parts"]]
        if numbers != sorted(parts) or any(
            hashlib.md5(parts[part["partNumber"]]).hexdigest() != part["etag"] for part in payload["parts"]
        ):
            raise HubError(400, "parts do not match the uploaded ones")
        data = b"".join(parts[number] for number in numbers)
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"assembled content does not match its oid {oid}")
        repo.lfs[oid] = data
        self._send(200)
        return 200

    def _lfs_verify(self, body: bytes, key: str, oid: str, **_: Any) -> int:
        payload = json.loads(body)
        data = self._object_repo(key).lfs.get(oid)
        if data is None or len(data) != payload["size"]:
            raise HubError(404, f"object {oid} was not uploaded")
        self._send(200)
        return 200

    def _commit(self, user: str | None, body: bytes, type: str, repo: str, rev: str, **_: Any) -> int:
        hub = self.hub
        stored = hub.writable(type, repo, user)
        branch = unquote(rev)
        if branch not in stored.branches:
            raise HubError(404, f"branch {branch} not found", "RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header")
        header = lines[0]["value"]
        head = stored.branches[branch]
        if header.get("parentCommit") and not head.startswith(header["parentCommit"]):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(stored.commits[head].files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                content = base64.b64decode(value["content"])
                files[value["path"]] = StoredFile(len(content), content)
            elif key == "lfsFile":
                data = stored.lfs.get(value["oid"])
                if data is None:
                    raise HubError(422, f"LFS object {value['oid']} of {value['path']} was not uploaded")
                files[value["path"]] = StoredFile(len(data), lfs_sha256=value["oid"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: f for path, f in files.items() if not path.startswith(prefix)}
            else:
                raise HubError(400, f"unknown operation {key}")
        commit = Commit(hub._new_oid(repo, head), head, header["summary"], header.get("description", ""), files, _now())
        stored.commits[commit.oid] = commit
        stored.branches[branch] = commit.oid
        prefix = "" if type == "model" else f"{type}s/"
        self._json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{hub.endpoint}/{prefix}{repo}/commit/{commit.oid}",
            },
        )
        return 200

    def _tag(self, user: str | None, body: bytes, type: str, repo: str, rev: str, **_: Any) -> int:
        stored = self.hub.writable(type, repo, user)
        commit = _commit_or_404(stored, unquote(rev))
        tag = json.loads(body)["tag"]
        if tag in stored.tags:
            raise HubError(409, f"Tag reference refs/tags/{tag} already exists")
        stored.tags[tag] = commit.oid
        self._json(200, {"ref": f"refs/tags/{tag}"})
        return 200

    # ------------------------------------------------------------------ downloads
    def _resolve(self, user: str | None, head: bool, type: str, repo: str, rev: str, path: str, **_: Any) -> int:
        stored = self.hub.readable(type, repo, user)
        commit = _commit_or_404(stored, unquote(rev))
        file = commit.files.get(unquote(path))
        if file is None:
            raise HubError(404, f"{path} not found at {rev}", "EntryNotFound")
        data = stored.lfs[file.lfs_sha256] if file.lfs_sha256 else file.content
        assert data is not None
        headers = {"X-Repo-Commit": commit.oid, "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if file.lfs_sha256:
            headers |= {
                "ETag": f'"{file.lfs_sha256}"',
                "X-Linked-Etag": f'"{file.lfs_sha256}"',
                "X-Linked-Size": str(file.size),
            }
        else:
            headers["ETag"] = f'"{file.blob_oid}"'
        status = 200
        ranged = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if ranged and not head:
            start = int(ranged.group(1))
            end = int(ranged.group(2)) if ranged.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        headers["Content-Length"] = str(len(data))
        self._send(status, data, headers, head=head)
        return status


def _commit_or_404(repo: Repo, revision: str) -> Commit:
    commit = repo.resolve(revision)
    if commit is None:
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
    return commit


def _tree_entry(path: str, stored: StoredFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": stored.blob_oid, "size": stored.size, "path": path}
    if stored.lfs_sha256:
        pointer = lfs_pointer(stored.lfs_sha256, stored.size)
        entry["lfs"] = {"oid": stored.lfs_sha256, "size": stored.size, "pointerSize": len(pointer)}
    return entry


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
