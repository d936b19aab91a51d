"""The released pretrained checkpoints that SHRED and its peers use, fetched into the cache on first use.

Each entry names the public address, the file, the architecture, and the licence as far as it is
stated by whoever publishes the weights. No checksum was published for any of these files, so
``sha256`` is ``None`` (a checksum is only ever entered with ``sha256_source``, the public page that
gives it): the download is checked for size, format and keys before it is renamed into place
(:func:`shred.models.download.check_file`), and its sha256 is written next to it (``<file>.sha256``)
so that a lab can pin it. See ``docs/CHECKPOINTS.md`` and ``docs/GUARANTEES.md``.

Sizes are the fp32 parameter counts times 4 bytes (the files add a few hundred kB of pickle).
"""
from __future__ import annotations

from .registry import ModelEntry, RemoteFile, register_model

_GUIDED = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/"
_HF = "https://huggingface.co/{repo}/resolve/main/{file}"

register_model(ModelEntry(
    name="celeba-hq-256",
    kind="download",
    architecture="ermongroup DDIM UNet, 113.7M parameters (ch 128, mult 1,1,2,2,4,4, attention at 16x16)",
    resolution=256, channels=3, data_range=(-1.0, 1.0),
    licence="none stated for the weights (SDEdit code: MIT); trained on CelebA-HQ (non-commercial research)",
    description="SDEdit's CelebA-HQ 256 DDPM (celeba_hq.ckpt), the face model of DDRM, DDNM and the SHRED paper",
    url="https://image-editing-test-12345.s3-us-west-2.amazonaws.com/checkpoints/celeba_hq.ckpt",
    filename="celeba_hq.ckpt", size_mb=455,
    homepage="https://github.com/ermongroup/SDEdit",
))

register_model(ModelEntry(
    name="imagenet-256-uncond",
    kind="download",
    architecture="OpenAI ADM UNet, 552.8M parameters (256 ch, 64-channel heads, learned sigma)",
    resolution=256, channels=3, data_range=(-1.0, 1.0),
    licence="MIT (openai/guided-diffusion); trained on ImageNet (ImageNet terms of access)",
    description="guided-diffusion's unconditional ImageNet 256 model, used by DDRM, DDNM, DPS and the SHRED paper",
    url=_GUIDED + "256x256_diffusion_uncond.pt", filename="256x256_diffusion_uncond.pt", size_mb=2211,
    homepage="https://github.com/openai/guided-diffusion",
))

register_model(ModelEntry(
    name="imagenet-256-cond",
    kind="download",
    architecture="OpenAI ADM UNet, class-conditional (1000 classes), 553.8M parameters; needs --class-label",
    resolution=256, channels=3, data_range=(-1.0, 1.0),
    licence="MIT (openai/guided-diffusion); trained on ImageNet (ImageNet terms of access)",
    description="guided-diffusion's class-conditional ImageNet 256 model (256x256_diffusion.pt)",
    url=_GUIDED + "256x256_diffusion.pt", filename="256x256_diffusion.pt", size_mb=2215,
    homepage="https://github.com/openai/guided-diffusion",
))

register_model(ModelEntry(
    name="ffhq-256-dps",
    kind="download",
    architecture="OpenAI ADM UNet, 93.6M parameters (128 ch, 1 res block, attention at 16x16, learned sigma)",
    resolution=256, channels=3, data_range=(-1.0, 1.0),
    licence="none stated (no licence file in the DPS repository); trained on FFHQ (dataset CC BY-NC-SA 4.0)",
    description="the FFHQ 256 model distributed with DPS (ffhq_10m.pt), also used by DiffPIR; it is on Google "
                "Drive, which answers programs with a confirmation page instead of the file: download it by hand",
    url=None, filename="ffhq_10m.pt", size_mb=374,
    homepage="https://drive.google.com/drive/folders/1jElnRoFv7b31fG0v6pTSQkelbSX3xGZh",
))

for _repo, _what in (("google/ddpm-ema-celebahq-256", "EMA weights"), ("google/ddpm-celebahq-256", "raw weights")):
    register_model(ModelEntry(
        name=_repo,
        kind="download",
        architecture="diffusers UNet2DModel, 113.7M parameters (same network as celeba-hq-256)",
        resolution=256, channels=3, data_range=(-1.0, 1.0),
        licence="Apache-2.0 (model card); trained on CelebA-HQ (non-commercial research)",
        description=f"Ho et al.'s DDPM CelebA-HQ 256 ({_what}) in diffusers format, on the Hugging Face Hub",
        size_mb=455,
        files=tuple(RemoteFile(f, _HF.format(repo=_repo, file=f))
                    for f in ("config.json", "scheduler_config.json", "diffusion_pytorch_model.bin")),
        homepage=f"https://huggingface.co/{_repo}",
        hub_repo=_repo,
    ))
