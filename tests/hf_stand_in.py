"""A local stand-in for the Hugging Face Hub's HTTP API: the few endpoints huggingface_hub calls to create a repo,
commit files and download them (read from huggingface_hub 2.4's hf_api.py, _commit_api.py and file_download.py).

Repos live in memory as a list of commits. Uploads: `POST /api/repos/create`, `POST /api/validate-yaml` (the client
checks a README's metadata first), `POST /api/models/REPO/preupload/REV` (answers "regular" for every file, so the
content comes base64 in the commit; the real Hub stores large files through LFS/Xet, which this stand-in does not
speak) and `POST /api/models/REPO/commit/REV` (ndjson). Downloads: `HEAD`/`GET /REPO/resolve/REV/PATH` with the
headers the client requires (X-Repo-Commit, ETag, sizes). As the Hub does for LFS files, a `.safetensors` file is a
redirect to a "CDN" on another host name (localhost instead of 127.0.0.1) carrying X-Linked-Etag (the sha256) and
X-Linked-Size, and the CDN honours Range requests; `cut_next_download = N` makes it drop the connection after N bytes
once (what the client resumes from). Every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field

LFS_SUFFIXES = (".safetensors", ".pt", ".pkl")


@dataclass
class Repo:
    private: bool
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (oid, path -> content), oldest first

    def files_at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if revision == "main":
            return self.commits[-1] if self.commits else None
        return next((commit for commit in self.commits if commit[0] == revision), None)


class StandInHub:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content, what the "CDN" serves
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.cut_next_download: int | None = None
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandInHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def commit(self, repo_id: str, files: dict[str, bytes]) -> str:
        """Add a commit holding the previous files updated with `files`; returns its oid."""
        repo = self.repos[repo_id]
        previous = dict(repo.commits[-1][1]) if repo.commits else {}
        previous.update(files)
        oid = hashlib.sha1(json.dumps([repo_id, len(repo.commits), sorted(previous)]).encode()).hexdigest()
        repo.commits.append((oid, previous))
        for content in files.values():
            self.blobs[hashlib.sha256(content).hexdigest()] = content
        return oid


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: StandInHub

    def log_message(self, *args):
        pass

    def _record(self):
        self.hub.requests.append((self.command, self.path, dict(self.headers)))

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None, *, send_body: bool = True):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _json(self, status: int, payload: dict, headers: dict | None = None):
        self._reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def do_POST(self):
        self._record()
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/api/repos/create":
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}"
            if repo_id in self.hub.repos:
                return self._json(409, {"error": "You already created this model repo", "url": f"{self.hub.endpoint}/{repo_id}"})
            self.hub.repos[repo_id] = Repo(private=request.get("visibility") == "private" or bool(request.get("private")))
            return self._json(200, {"url": f"{self.hub.endpoint}/{repo_id}"})
        if path == "/api/validate-yaml":
            return self._json(200, {})
        match = re.fullmatch(r"/api/models/(?P<repo>[^/]+/[^/]+)/(?P<action>preupload|commit)/(?P<revision>[^/]+)", path)
        if match is None or match["repo"] not in self.hub.repos:
            return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if match["action"] == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        files = {}
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] != "header":
                return self._json(400, {"error": f"the stand-in does not take {item['key']} operations"})
        oid = self.hub.commit(match["repo"], files)
        return self._json(200, {"commitUrl": f"{self.hub.endpoint}/{match['repo']}/commit/{oid}", "commitOid": oid,
                                "pullRequestUrl": None})  # fmt: skip

    def do_HEAD(self):
        self._serve(send_body=False)

    def do_GET(self):
        self._serve(send_body=True)

    def _serve(self, send_body: bool):
        self._record()
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        cdn = re.fullmatch(r"/cdn/(?P<sha>[0-9a-f]{64})", path)
        if cdn:
            return self._serve_blob(self.hub.blobs[cdn["sha"]], send_body, may_cut=True)
        match = re.fullmatch(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)", path)
        repo = self.hub.repos.get(match["repo"]) if match else None
        if repo is None:
            return self._reply(404, b"", {"X-Error-Code": "RepoNotFound"}, send_body=send_body)
        found = repo.files_at(match["revision"])
        if found is None:
            return self._reply(404, b"", {"X-Error-Code": "RevisionNotFound"}, send_body=send_body)
        oid, files = found
        if match["file"] not in files:
            return self._reply(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": oid}, send_body=send_body)
        content = files[match["file"]]
        sha256 = hashlib.sha256(content).hexdigest()
        if match["file"].endswith(LFS_SUFFIXES):
            location = f"http://localhost:{self.hub.port}/cdn/{sha256}"
            return self._reply(302, b"", {"Location": location, "X-Repo-Commit": oid, "X-Linked-Etag": f'"{sha256}"',
                                          "X-Linked-Size": str(len(content))}, send_body=send_body)  # fmt: skip
        git_sha1 = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        return self._serve_blob(content, send_body, {"X-Repo-Commit": oid, "ETag": f'"{git_sha1}"'})

    def _serve_blob(self, content: bytes, send_body: bool, headers: dict | None = None, may_cut: bool = False):
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if ranged and int(ranged[1]) < len(content):
            start = int(ranged[1])
            headers = {**(headers or {}), "Content-Range": f"bytes {start}-{len(content) - 1}/{len(content)}"}
        if send_body and may_cut and self.hub.cut_next_download is not None:
            cut, self.hub.cut_next_download = self.hub.cut_next_download, None  # promise the whole file, send part of it, hang up
            self._reply(200, content[:cut], {**(headers or {}), "Content-Length": str(len(content))})
            self.close_connection = True
            return
        self._reply(206 if start else 200, content[start:], headers, send_body=send_body)
