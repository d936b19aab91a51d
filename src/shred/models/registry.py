"""Known models: the ones bundled with shred and the released checkpoints it can fetch.

A leaf module (it imports neither the loaders nor the downloader); :mod:`shred.models.resolve`
turns a name into a local path, fetching it when needed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ShredError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a downloadable model.

    Attributes:
        path: where it goes inside the model's cache folder (``config.json``, ``celeba_hq.ckpt``).
        url: public address, or ``None`` when it cannot be fetched by a program (see ``homepage``).
        sha256: hex checksum, or ``None`` where no published checksum is known (never computed
            from a download and pinned as if published).
        size: bytes, when known.
        sha256_source: where ``sha256`` was published (an address); required with ``sha256``.
    """

    path: str
    url: str | None
    sha256: str | None = None
    size: int | None = None
    sha256_source: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model registry.

    Attributes:
        name: the CLI name (``--model NAME``).
        kind: ``"bundled"`` (ships inside the package) or ``"download"`` (fetched into the cache).
        architecture: what network the file holds.
        resolution: image side in pixels.
        channels: 1 (grey) or 3 (RGB).
        data_range: the model's pixel range.
        licence: the licence of the weights.
        description: provenance in a sentence.
        url: public download address (downloadable models).
        sha256: checksum of the file, when a public source gives one.
        sha256_source: where that checksum was published; required with ``sha256``.
        filename: file name in the cache.
        size_mb: approximate size of the weights.
        files: the files of a model made of several (a diffusers repository), fetched into one folder;
            empty for a single-file model, which uses ``url``, ``sha256`` and ``filename``.
        homepage: where a person can get the files by hand (the only way when ``url`` is ``None``).
        hub_repo: a Hugging Face Hub repository (``google/ddpm-ema-celebahq-256``): ``files`` are
            fetched from it with ``huggingface_hub`` (its resuming, locking and ``HF_ENDPOINT``),
            at ``hub_revision``; their ``url`` is then informational.
        hub_revision: branch, tag or commit of ``hub_repo``.
    """

    name: str
    kind: str
    architecture: str
    resolution: int
    channels: int
    data_range: tuple[float, float]
    licence: str
    description: str
    url: str | None = None
    sha256: str | None = None
    filename: str | None = None
    size_mb: float | None = None
    files: tuple[RemoteFile, ...] = ()
    homepage: str | None = None
    hub_repo: str | None = None
    hub_revision: str = "main"
    sha256_source: str | None = None

    @property
    def path(self) -> Path | None:
        return BUNDLED_DIR / self.name if self.kind == "bundled" else None

    @property
    def remote_files(self) -> tuple[RemoteFile, ...]:
        """The files to fetch: ``files``, or the one file named by ``filename`` and ``url``."""
        if self.files:
            return self.files
        if self.filename is None:
            return ()
        return (RemoteFile(self.filename, self.url, self.sha256, sha256_source=self.sha256_source),)


MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` to :data:`MODELS`; a checksum must name the public source that gives it."""
    for f in entry.remote_files:
        if f.sha256 is not None and not f.sha256_source:
            raise ShredError(f"model {entry.name}: the sha256 of {f.path} needs the public source that gives it "
                             "(sha256_source)")
    MODELS[entry.name] = entry
    return entry


def bundled_models() -> list[ModelEntry]:
    """Bundled entries whose files are present in this installation."""
    return [e for e in MODELS.values() if e.kind == "bundled" and (e.path / "config.json").is_file()]


def default_model(channels: int) -> str:
    """The bundled model for RGB (3) or grey (1) input."""
    for e in bundled_models():
        if e.channels == channels:
            return e.name
    raise ShredError(f"no bundled model for {channels}-channel images in this installation; "
                     "pass --model NAME or a model folder")
