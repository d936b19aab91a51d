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
from shred.errors import CheckpointError, DownloadError
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
        if self.path in srv.html:  # a sign-in or error page, answered with 200
            page = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", srv.html[self.path])
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        start = 0
        if (rng := self.headers.get("Range")) and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(body):
                self.send_response(416, "Range Not Satisfiable")
                if srv.total_on_416:
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if self.path in srv.no_length:
            # No Content-Length: the body ends when the connection closes, here after a third of it.
            self.end_headers()
            self.wfile.write(body[start:start + (len(body) - start) // 3])
            self.close_connection = True
            return
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
        self.no_length: set[str] = set()  # paths sent without Content-Length and cut short
        self.html: dict[str, str] = {}  # path -> the Content-Type of the HTML page it answers
        self.total_on_416 = False  # send Content-Range: bytes */<size> with a 416

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
    assert server.requests[-1] == ("/adm.pt", f"bytes={have - 1}-")  # from the last byte kept
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


# --- a download is verified before it is renamed into place (issue 14, item 6) ----------------------


def test_a_body_without_length_that_stops_early_stays_a_part_and_resumes(server, cache, monkeypatch, ckpt):
    # Reliability case 206: no Content-Length, a third of the file, then the connection closes.
    server.files["/adm.pt"] = ckpt
    server.no_length.add("/adm.pt")
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    with pytest.raises(DownloadError, match="without a complete file") as err:
        fetch(entry, progress=False)
    part = cache / "test-adm-32" / "adm.pt.part"
    msg = _one_line(err.value)
    assert "run the same command again to resume" in msg and str(part) in msg
    assert not local_path(entry).exists() and 0 < part.stat().st_size < len(ckpt)
    # Case 207: the next run (the mirror fixed) resumes from the kept bytes and verifies the whole.
    server.no_length.clear()
    have = part.stat().st_size
    assert load_model(entry.name).image_size == (32, 32)
    assert server.requests[-1] == ("/adm.pt", f"bytes={have - 1}-")  # from the last byte kept
    assert local_path(entry).read_bytes() == ckpt and not part.exists()


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_an_html_page_answered_with_200_is_never_the_checkpoint(content_type, server, cache, monkeypatch, ckpt):
    # Case 208: by its Content-Type, or (a server that calls it binary) by its first bytes.
    server.files["/adm.pt"] = ckpt
    server.html["/adm.pt"] = content_type
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    with pytest.raises(DownloadError, match="HTML page") as err:
        fetch(entry, progress=False)
    assert str(local_path(entry)) in _one_line(err.value)
    assert list((cache / "test-adm-32").iterdir()) == []  # nothing renamed, nothing kept
    del server.html["/adm.pt"]
    assert fetch(entry, progress=False) == local_path(entry) and local_path(entry).read_bytes() == ckpt


@pytest.mark.parametrize("total_on_416", [False, True])
def test_a_stale_longer_part_answered_with_416_is_fetched_again(total_on_416, server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    server.total_on_416 = total_on_416
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    part = cache / "test-adm-32" / "adm.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(ckpt + b"stale bytes of another, longer file")
    assert fetch(entry, progress=False) == local_path(entry)
    assert local_path(entry).read_bytes() == ckpt and not part.exists()
    assert server.requests[0][1] == f"bytes={len(ckpt) + 34}-" and server.requests[-1][1] is None  # from the start


def test_a_part_longer_than_the_known_size_is_not_even_resumed(server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    entry = _entry(monkeypatch, files=(RemoteFile("adm.pt", server.url + "/adm.pt", size=len(ckpt)),), filename=None)
    part = cache / "test-adm-32" / "adm.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(ckpt + b"more")
    fetch(entry, progress=False)
    assert server.requests == [("/adm.pt", None)] and local_path(entry).parent.joinpath("adm.pt").read_bytes() == ckpt


def test_a_file_that_is_not_a_known_checkpoint_is_not_renamed_into_place(server, cache, monkeypatch):
    buf = io.BytesIO()
    torch.save({"some.other.network": torch.zeros(3)}, buf)  # complete and readable, wrong keys
    server.files["/adm.pt"] = buf.getvalue()
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    with pytest.raises(DownloadError, match="not a diffusion UNet shred knows") as err:
        fetch(entry, progress=False)
    _one_line(err.value)
    assert list((cache / "test-adm-32").iterdir()) == []


def _plant(entry, data: bytes):
    path = local_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_cached_file_that_does_not_load_is_fetched_again(server, cache, monkeypatch, ckpt, capsys):
    # Cases 207 and 209: 'download it again' must do something.
    server.files["/adm.pt"] = ckpt
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    _plant(entry, ckpt[: len(ckpt) // 3])  # a truncated zip: found by the quick check on every use
    assert load_model(entry.name).image_size == (32, 32)
    assert len(server.requests) == 1 and local_path(entry).read_bytes() == ckpt
    assert "not usable (an incomplete zip" in capsys.readouterr().err
    _plant(entry, b"<html><body>Sign in</body></html>")
    assert main(["models", "download", entry.name, "--quiet"]) == 0
    assert len(server.requests) == 2 and local_path(entry).read_bytes() == ckpt


def test_a_cached_payload_never_runs_and_the_message_names_the_repair(server, cache, monkeypatch, ckpt, tmp_path):
    class Payload:
        def __reduce__(self):
            return exec, (f"open({str(tmp_path / 'RAN')!r}, 'w').close()",)

    server.files["/adm.pt"] = ckpt
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    buf = io.BytesIO()
    torch.save({"w": Payload()}, buf)  # a complete zip: passes the quick check, refused when loaded
    path = _plant(entry, buf.getvalue())
    with pytest.raises(CheckpointError) as err:
        load_model(entry.name)
    msg = _one_line(err.value)
    assert f"shred-ir models download {entry.name}" in msg and str(path) in msg
    assert main(["models", "download", entry.name, "--quiet"]) == 0  # the thorough check: fetched again
    assert local_path(entry).read_bytes() == ckpt and not (tmp_path / "RAN").exists()


def test_a_broken_file_that_cannot_be_fetched_is_named_for_deletion(cache, monkeypatch):
    entry = _entry(monkeypatch, name="by-hand", url=None, filename="weights.pt")
    path = _plant(entry, b"<!DOCTYPE html><html>Google Drive can't scan this file for viruses</html>")
    with pytest.raises(DownloadError, match="HTML page") as err:
        load_model("by-hand")
    msg = _one_line(err.value)
    assert f"{path} in the cache is not usable" in msg and "delete it" in msg and "https://example.org/by-hand" in msg
    assert path.exists()  # a file the user put there is theirs to delete


def test_the_cache_folder_is_checked_before_any_request(server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    monkeypatch.setattr("os.access", lambda *a, **k: False)  # as a read-only cache would answer
    with pytest.raises(DownloadError, match="cannot write into the cache folder") as err:
        fetch(entry, progress=False)
    _one_line(err.value)
    assert server.requests == []


def test_a_checksum_needs_its_public_source():
    from shred.errors import ShredError
    from shred.models import register_model

    with pytest.raises(ShredError, match="sha256_source"):
        register_model(ModelEntry(name="x", kind="download", architecture="a", resolution=32, channels=3,
                                  data_range=(-1.0, 1.0), licence="l", description="d", url="https://e.org/x.pt",
                                  filename="x.pt", sha256="0" * 64))
    assert "x" not in MODELS
    assert all(f.sha256 is None or f.sha256_source for e in MODELS.values() for f in e.remote_files)


def test_check_file_by_type(tmp_path):
    from safetensors.torch import save

    from shred.models.download import check_file

    good = save({"a": torch.zeros(4)})
    (tmp_path / "m.safetensors").write_bytes(good)
    assert check_file(tmp_path / "m.safetensors") is None
    (tmp_path / "cut.safetensors").write_bytes(good[:-3])
    assert "truncated" in check_file(tmp_path / "cut.safetensors")
    (tmp_path / "c.json").write_text('{"a": 1')
    assert "not valid JSON" in check_file(tmp_path / "c.json")
    (tmp_path / "x.part").write_text("[1, 2]")
    assert check_file(tmp_path / "x.part", name="config.json") == "not a JSON object"  # typed by its final name
    (tmp_path / "s.bin").write_bytes(b"12345")
    assert check_file(tmp_path / "s.bin", size=6) == "5 bytes, expected 6"


def test_a_part_of_another_file_is_fetched_again_from_the_start(server, cache, monkeypatch, ckpt):
    server.files["/adm.pt"] = ckpt
    entry = _entry(monkeypatch, url=server.url + "/adm.pt")
    part = cache / "test-adm-32" / "adm.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"X" * 1000)  # its last byte disagrees with the file's byte 999
    fetch(entry, progress=False)
    assert [r[1] for r in server.requests] == ["bytes=999-", None] and local_path(entry).read_bytes() == ckpt
    # Agreeing at the last byte but damaged before it: the completed file does not verify, so the
    # kept bytes are dropped and the file is fetched once more from the start.
    server.requests.clear()
    local_path(entry).unlink()
    part.write_bytes(b"XX" + ckpt[2:1000])
    fetch(entry, progress=False)
    assert [r[1] for r in server.requests] == ["bytes=999-", None] and local_path(entry).read_bytes() == ckpt
