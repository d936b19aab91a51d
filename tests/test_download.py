"""Fetching models into the cache, against a local HTTP server on 127.0.0.1 that supports Range."""
import hashlib
import http.server
import io
import json
import socket
import threading

import pytest
import torch

from ckpt_factory import adm_state, ddim_state
from shred.cli import main
from shred.errors import DownloadError
from shred.models import MODELS, ModelEntry, load_model
from shred.models.convert import unet_from_state
from shred.models.download import cache_dir, fetch, is_cached, local_path
from shred.models.registry import RemoteFile


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"

    def do_HEAD(self):  # noqa: N802 (how huggingface_hub asks for a file's size, etag and commit)
        self.do_GET(send_body=False)

    def do_GET(self, send_body=True):  # noqa: N802 (http.server's naming)
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")) if send_body else ("HEAD " + self.path, None))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if (rng := self.headers.get("Range")) and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(body):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        # What the Hugging Face Hub sends with every file (the plain downloader ignores them).
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        self.end_headers()
        if not send_body:
            return
        if self.path in srv.drop_once:
            # Announce the whole file, send 40% of it, then cut the connection.
            srv.drop_once.discard(self.path)
            self.wfile.write(body[start:start + (len(body) - start) * 2 // 5])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_once: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHRED_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SHRED_MODEL_BASE_URL", raising=False)
    return tmp_path / "cache"


def _checkpoint_bytes() -> bytes:
    # A 3-level ADM network at 32x32 (about 4 MB, so several 1 MiB chunks).
    buf = io.BytesIO()
    torch.save(adm_state(ch=32, mult=(1, 2, 2), n_res=1, attention=(2, 4)), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def ckpt() -> bytes:
    return _checkpoint_bytes()


def _entry(monkeypatch, name="test-adm-32", **kw) -> ModelEntry:
    fields = dict(name=name, kind="download", architecture="ADM", resolution=32, channels=3,
                  data_range=(-1.0, 1.0), licence="test", description="a generated test checkpoint",
                  filename="adm.pt", homepage="https://example.org/by-hand")
    entry = ModelEntry(**{**fields, **kw})
    monkeypatch.setitem(MODELS, name, entry)
    return entry


def _one_line(exc) -> str:
    assert "\n" not in str(exc)
    return str(exc)


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("SHRED_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "shred"
    monkeypatch.setenv("SHRED_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("SHRED_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir().parts[-2:] == (".cache", "shred")


def test_first_use_downloads_verifies_and_loads(server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    entry = _entry(monkeypatch, url=server.url + "/adm.pt", sha256=hashlib.sha256(ckpt).hexdigest())
    den = load_model(entry.name)  # what `--model test-adm-32` does
    assert den.name == entry.name and den.image_size == (32, 32)
    path = local_path(entry)
    assert path == cache / "test-adm-32" / "adm.pt" and path.read_bytes() == ckpt
    assert sorted(p.name for p in path.parent.iterdir()) == ["adm.pt"]  # no .part left behind
    load_model(entry.name)
    assert len(server.requests) == 1  # the second use reads the cache


def test_interrupted_download_resumes_with_range(server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    server.drop_once.add("/adm.pt")
    entry = _entry(monkeypatch, url=server.url + "/adm.pt", sha256=hashlib.sha256(ckpt).hexdigest())
    with pytest.raises(DownloadError, match="interrupted.*run the same command again to resume") as err:
        fetch(entry, progress=False, retries=0)
    _one_line(err.value)
    part = cache / "test-adm-32" / "adm.pt.part"
    have = part.stat().st_size
    assert 0 < have < len(ckpt) and not is_cached(entry)
    assert fetch(entry, progress=False) == local_path(entry)
    assert server.requests[-1] == ("/adm.pt", f"bytes={have}-")
    assert local_path(entry).read_bytes() == ckpt and not part.exists()


def test_interruption_is_retried_within_one_call(server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    server.drop_once.add("/adm.pt")
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    fetch(entry, progress=False)
    assert [r[1] is None for r in server.requests] == [True, False]  # the second asked for the rest
    assert local_path(entry).read_bytes() == ckpt
    # No published checksum: the computed one is kept next to the file, for pinning.
    sidecar = local_path(entry).with_name("adm.pt.sha256").read_text()
    assert sidecar == f"{hashlib.sha256(ckpt).hexdigest()}  adm.pt\n"


def test_checksum_mismatch_removes_the_file(server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    entry = _entry(monkeypatch, url=server.url + "/adm.pt", sha256="0" * 64)
    with pytest.raises(DownloadError, match="checksum mismatch") as err:
        fetch(entry, progress=False)
    assert str(local_path(entry)) in _one_line(err.value)
    assert not any((cache / "test-adm-32").iterdir())


def test_missing_file_and_no_network_say_what_to_download_and_where(server, cache, monkeypatch):
    entry = _entry(monkeypatch, url=server.url + "/nothing-here.pt")
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        load_model(entry.name)
    msg = _one_line(err.value)
    assert entry.url in msg and str(local_path(entry)) in msg
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    entry = _entry(monkeypatch, url=f"http://127.0.0.1:{closed}/adm.pt")
    with pytest.raises(DownloadError, match="cannot download") as err:
        fetch(entry, progress=False)
    assert str(local_path(entry)) in _one_line(err.value)


def test_manual_download_and_mirror(server, cache, monkeypatch, ckpt):
    entry = _entry(monkeypatch, name="by-hand", url=None, filename="weights.pt")
    with pytest.raises(DownloadError, match="cannot be downloaded automatically") as err:
        load_model("by-hand")
    msg = _one_line(err.value)
    assert "https://example.org/by-hand" in msg and str(cache / "by-hand" / "weights.pt") in msg
    # A lab mirror (or this test) can serve it under <base>/<name>/<file>.
    server.files["/by-hand/weights.pt"] = ckpt
    monkeypatch.setenv("SHRED_MODEL_BASE_URL", server.url)
    assert load_model("by-hand").image_size == (32, 32)
    assert is_cached(entry)


def _diffusers_folder_files() -> dict[str, bytes]:
    unet, _ = unet_from_state(ddim_state(ch=32, mult=(1, 2), attention=(2,)), image_size=32)
    buf = io.BytesIO()
    torch.save(unet.state_dict(), buf)
    config = {"_class_name": "UNet2DModel", **{k: (list(v) if isinstance(v, tuple) else v)
                                               for k, v in unet.config.items() if not k.startswith("_")}}
    scheduler = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_timesteps": 1000}
    return {"config.json": json.dumps(config).encode(), "scheduler_config.json": json.dumps(scheduler).encode(),
            "diffusion_pytorch_model.bin": buf.getvalue()}


def test_multi_file_repository_and_cli(server, cache, monkeypatch, capsys):
    files = _diffusers_folder_files()
    for name, data in files.items():
        server.files[f"/hub/ddpm-tiny/{name}"] = data
    entry = _entry(monkeypatch, name="hub/ddpm-tiny", filename=None,
                   files=tuple(RemoteFile(n, f"{server.url}/hub/ddpm-tiny/{n}") for n in files))
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    line = next(ln for ln in listing.splitlines() if ln.startswith("hub/ddpm-tiny"))
    assert "32x32 RGB" in line and "not downloaded" in line
    assert "licence: test" in listing and str(cache) in listing

    assert main(["models", "download", "hub/ddpm-tiny", "--quiet"]) == 0
    folder = cache / "hub--ddpm-tiny"
    assert local_path(entry) == folder and sorted(p.name for p in folder.iterdir() if ".sha256" not in p.name) \
        == sorted(files)
    assert main(["models"]) == 0
    assert f"cached ({folder})" in capsys.readouterr().out
    assert load_model("hub/ddpm-tiny").image_size == (32, 32)

    assert main(["models", "download", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_hub_repositories_are_fetched_with_huggingface_hub(server, cache, monkeypatch, capsys):
    # The Hub client speaks to this local server as it would to huggingface.co (HEAD for size, etag
    # and commit, then GET under /<repo>/resolve/<revision>/<file>), pointed at it by HF_ENDPOINT.
    import huggingface_hub

    files = _diffusers_folder_files()
    for name, data in files.items():
        server.files[f"/org/ddpm-tiny/resolve/main/{name}"] = data
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    calls = []
    real = huggingface_hub.hf_hub_download
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append(a) or real(*a, **k))
    entry = _entry(monkeypatch, name="org/ddpm-tiny", filename=None, hub_repo="org/ddpm-tiny",
                   files=tuple(RemoteFile(n, f"https://huggingface.co/org/ddpm-tiny/resolve/main/{n}") for n in files))
    assert main(["models", "download", "org/ddpm-tiny", "--quiet"]) == 0, capsys.readouterr().err
    assert [a[:2] for a in calls] == [("org/ddpm-tiny", n) for n in files]  # through the Hub client
    folder = cache / "org--ddpm-tiny"
    assert all((folder / n).read_bytes() == data for n, data in files.items())
    assert {p for p, _ in server.requests if not p.startswith("HEAD")} == \
        {f"/org/ddpm-tiny/resolve/main/{n}" for n in files}
    assert load_model("org/ddpm-tiny").image_size == (32, 32)
    n = len(server.requests)
    fetch(entry, progress=False)
    assert len(server.requests) == n  # cached: nothing asked again


def test_hub_errors_are_one_line_and_checked_sizes_are_enforced(server, cache, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    entry = _entry(monkeypatch, name="org/missing", filename=None, hub_repo="org/missing",
                   files=(RemoteFile("config.json", None),))
    with pytest.raises(DownloadError, match="from the Hugging Face Hub") as err:
        fetch(entry, progress=False)
    msg = _one_line(err.value)
    assert "org/missing" in msg and str(cache / "org--missing" / "config.json") in msg
    server.files["/org/sized/resolve/main/w.bin"] = b"12345"
    entry = _entry(monkeypatch, name="org/sized", filename=None, hub_repo="org/sized",
                   files=(RemoteFile("w.bin", None, size=6),))
    with pytest.raises(DownloadError, match="got 5 bytes but expected 6"):
        fetch(entry, progress=False)
    assert not (cache / "org--sized" / "w.bin").exists()


def test_every_hugging_face_entry_of_the_registry_goes_through_the_hub_client():
    hub = [e for e in MODELS.values() if any("huggingface.co" in (f.url or "") for f in e.remote_files)]
    assert {e.name for e in hub} >= {"google/ddpm-ema-celebahq-256", "google/ddpm-celebahq-256"}
    assert all(e.hub_repo == e.name for e in hub)
