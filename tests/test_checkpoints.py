"""Released checkpoint formats: exact equivalence with the reference implementations, and clear errors.

The reference files (../shared/data/reference-checkpoints) are random-weight networks with the exact
keys and file format of the released checkpoints, at 32 base channels, with outputs computed by the
original code (ermongroup DDIM, OpenAI guided-diffusion).
"""
import json

import pytest
import torch

from ckpt_factory import adm_state, ddim_state
from conftest import shared
from shred.errors import CheckpointError, ShredError
from shred.models import load_checkpoint_file, load_folder, load_model
from shred.models.convert import unet_from_state

# Correct implementations agree with the reference to ~6e-6 (float32 summation order); every wrong
# mapping seen (qkv split by chunk(3), missing middle GroupNorm, wrong embedding phase) is off by
# >= 1.2e-4 (../shared/data/README.md).
ATOL = RTOL = 1e-4

REFERENCES = {
    # name: (generator of the same layout, its arguments)
    "celeba_hq_small": (ddim_state, {}),
    "adm_imagenet256_uncond_small": (adm_state, {}),
    "adm_ffhq256_dps_small": (adm_state, {"n_res": 1, "attention": (16,)}),
}


def _one_line(exc: Exception) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_reference_implementation(name):
    path = shared("reference-checkpoints", f"{name}.pt")
    io = torch.load(shared("reference-checkpoints", f"{name}_io.pt"), weights_only=True)
    den = load_model(path)  # recognised by content, not by name
    assert den.image_size == (256, 256) and den.learned_sigma == (io["out"].shape[1] == 6)
    assert not any(p.requires_grad for p in den.parameters()) and not den.unet.training
    with torch.no_grad():
        out = den.unet(io["x"], io["t"]).sample  # [2, 3 or 6, 256, 256], eps (then the variance)
    torch.testing.assert_close(out, io["out"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_generated_layouts_are_the_released_ones(name):
    """The generator used by the data-free tests below has exactly the reference files' keys and shapes."""
    ref = torch.load(shared("reference-checkpoints", f"{name}.pt"), weights_only=True, mmap=True)
    make, kwargs = REFERENCES[name]
    gen = make(seed=None, **kwargs)
    assert {k: v.shape for k, v in ref.items()} == {k: v.shape for k, v in gen.items()}


def test_every_tensor_is_used_exactly_once():
    for state in (adm_state(seed=None), ddim_state(seed=None), adm_state(seed=None, n_res=1, attention=(16,))):
        unet, conv = unet_from_state(state)
        assert set(conv.state) == set(unet.state_dict())
        # ADM fuses q, k, v into one tensor: 2 extra tensors per attention weight and bias.
        n_attn = sum(k.endswith("qkv.weight") for k in state)
        assert len(conv.state) == len(state) + 4 * n_attn


def _tiny_adm(**kw):
    # 3 levels of 32/64/64 channels at 32x32: small enough for gradient and dtype tests.
    return dict(ch=32, mult=(1, 2, 2), n_res=1, attention=(2, 4), **kw)


def test_input_gradient_flows_through_frozen_network(tmp_path):
    torch.save(adm_state(**_tiny_adm()), tmp_path / "adm.pt")
    den = load_model(tmp_path / "adm.pt")
    assert den.image_size == (32, 32)
    t = torch.tensor([10, 500])
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    eps = den(x, t)
    with torch.no_grad():  # learned sigma reduced to eps: the first 3 of the 6 output channels
        assert torch.equal(eps, den.unet(x, t).sample[:, :3])
    eps.square().sum().backward()
    assert all(p.grad is None for p in den.parameters())
    # The gradient is the network's: its directional derivative matches central differences, in
    # float64 (step 1e-4: truncation ~1e-8, round-off ~1e-12 relative).
    den64 = load_model(tmp_path / "adm.pt", dtype=torch.float64)
    x64 = x.detach().double().requires_grad_(True)
    g, = torch.autograd.grad(den64(x64, t).square().sum(), x64)
    v = torch.randn(x64.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        loss = [den64(x64 + s * 1e-4 * v, t).square().sum() for s in (1, -1)]
    assert float((g * v).sum()) == pytest.approx(float(loss[0] - loss[1]) / 2e-4, rel=1e-6)
    # and the float32 path's gradient is that one, to float32 precision (measured 2e-5 off, of ~6).
    torch.testing.assert_close(x.grad.double(), g, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inference(tmp_path, dtype):
    torch.save(adm_state(**_tiny_adm()), tmp_path / "adm.pt")
    x, t = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([300])
    with torch.no_grad():
        ref = load_model(tmp_path / "adm.pt")(x, t)
        den = load_model(tmp_path / "adm.pt", dtype=dtype)
        eps = den(x, t)
    assert den.unet.dtype == dtype and eps.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa (relative error 4e-3 per operation); over ~20 layers the eps of
    # this random network stays within a few percent of its scale (~1).
    assert (eps - ref).abs().max() < 0.1


def test_class_conditional_end_to_end(tmp_path):
    state = adm_state(**_tiny_adm(classes=10))
    state["label_emb.weight"][3] = 0  # class 3 adds nothing to the time embedding
    torch.save(state, tmp_path / "cond.pt")
    uncond = {k: v for k, v in state.items() if k != "label_emb.weight"}
    torch.save(uncond, tmp_path / "uncond.pt")
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([400])

    den = load_model(tmp_path / "cond.pt")
    assert den.num_classes == 10
    with pytest.raises(ShredError, match="class-label") as err:
        den(x, t)
    _one_line(err.value)
    with torch.no_grad():
        eps3 = load_model(tmp_path / "cond.pt", class_label=3)(x, t)
        eps5 = load_model(tmp_path / "cond.pt", class_label=5)(x, t)
        eps_u = load_model(tmp_path / "uncond.pt")(x, t)
    torch.testing.assert_close(eps3, eps_u, atol=1e-6, rtol=1e-6)  # same network, same embedding
    assert (eps5 - eps_u).abs().max() > 1e-3  # another class embedding changes eps (measured 2.2)
    with pytest.raises(CheckpointError, match="out of range"):
        load_model(tmp_path / "cond.pt", class_label=10)
    with pytest.raises(CheckpointError, match="not class-conditional"):
        load_model(tmp_path / "uncond.pt", class_label=0)


def test_cli_restore_with_class_conditional_model_needs_a_label(tmp_path, capsys):
    import numpy as np

    from shred.cli import main

    torch.save(adm_state(**_tiny_adm(classes=10)), tmp_path / "cond.pt")
    np.save(tmp_path / "y.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    argv = ["restore", str(tmp_path / "y.npy"), "--task", "sr", "--scale", "4", "--model", str(tmp_path / "cond.pt"),
            "--iterations", "1", "--quiet", "--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--class-label" in err
    assert not (tmp_path / "x.png").exists()
    assert main([*argv, "--class-label", "7"]) == 0 and (tmp_path / "x.png").is_file()


# --- diffusers folders -----------------------------------------------------------------------------
# google/ddpm-celebahq-256's config.json as published (diffusers 0.0.4 era, old attention key names).
GOOGLE_CONFIG = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu", "attention_head_dim": None,
    "block_out_channels": [128, 128, 256, 256, 512, 512], "center_input_sample": False,
    "down_block_types": ["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"], "downsample_padding": 0,
    "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3,
    "sample_size": 256, "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4,
    "some_option_of_another_diffusers_version": True,
}
GOOGLE_SCHEDULER = {"_class_name": "DDPMScheduler", "_diffusers_version": "0.0.4", "beta_end": 0.02,
                    "beta_schedule": "linear", "beta_start": 0.0001, "clip_sample": True,
                    "num_train_timesteps": 1000, "timestep_values": None, "trained_betas": None,
                    "variance_type": "fixed_small"}
_NEW_TO_OLD = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}


def test_diffusers_folder_with_old_attention_names_is_the_ddim_network(tmp_path):
    """A google/ddpm-celebahq-256-style folder loads, and is the same network as celeba_hq.ckpt."""
    ch = 32  # the released width is 128; the layout scales with it
    state = ddim_state(ch=ch)
    unet, _ = unet_from_state(state)
    old = {}
    for k, v in unet.state_dict().items():
        for new, was in _NEW_TO_OLD.items():
            k = k.replace(new, was) if "attentions" in k else k
        old[k] = v.clone()
    assert any(".query." in k for k in old)
    folder = tmp_path / "ddpm-celebahq"
    folder.mkdir()
    torch.save(old, folder / "diffusion_pytorch_model.bin")
    cfg = dict(GOOGLE_CONFIG, block_out_channels=[c * ch // 128 for c in GOOGLE_CONFIG["block_out_channels"]])
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "scheduler_config.json").write_text(json.dumps(GOOGLE_SCHEDULER))

    den = load_folder(folder)
    assert den.schedule.T == 1000
    x, t = torch.randn(1, 3, 64, 64), torch.tensor([123])
    with torch.no_grad():
        torch.testing.assert_close(den.unet(x, t).sample, unet(x, t).sample, atol=0, rtol=0)


# --- errors ----------------------------------------------------------------------------------------
def test_truncated_and_corrupt_files(tmp_path):
    torch.save(ddim_state(ch=32, mult=(1, 2), attention=(2,)), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.ckpt").write_bytes(bytes(range(256)) * 64)
    for name in ("cut.pt", "noise.ckpt"):
        with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
            load_checkpoint_file(tmp_path / name)
        _one_line(err.value)


def test_unrelated_state_dict(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).state_dict(),
               tmp_path / "mlp.pt")
    with pytest.raises(CheckpointError, match="not a diffusion UNet") as err:
        load_model(tmp_path / "mlp.pt")
    assert "supported" in _one_line(err.value)


def test_diffusers_weights_without_config(tmp_path):
    unet, _ = unet_from_state(ddim_state(ch=32, mult=(1, 2), attention=(2,)))
    torch.save(unet.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="config.json") as err:
        load_model(tmp_path / "diffusion_pytorch_model.bin")
    _one_line(err.value)


def _without_scale_shift(state):
    # use_scale_shift_norm=False: the embedding projection has C rows instead of 2C.
    return {k: (v[: v.shape[0] // 2] if "emb_layers" in k else v) for k, v in state.items()}


def _without_resample_conv(state):
    return {k: v for k, v in state.items() if "downsample" not in k}


def _with_extra_tensor(state):
    return {**state, "down.0.block.0.extra.weight": torch.zeros(1)}


@pytest.mark.parametrize("state, expect", [
    (lambda: _without_scale_shift(adm_state(**_tiny_adm())), "use_scale_shift_norm=False"),
    (lambda: adm_state(**_tiny_adm(), seed=None) | {"time_embed.0.weight": torch.zeros(128, 64)},
     "time embedding of width 64"),
    (lambda: _without_resample_conv(ddim_state(ch=32, mult=(1, 2), attention=(2,))), "resamp_with_conv"),
    (lambda: _with_extra_tensor(ddim_state(ch=32, mult=(1, 2), attention=(2,))), "no known role"),
    (lambda: {k: v for k, v in adm_state(**_tiny_adm()).items() if not k.startswith("middle_block.1.")},
     "middle_block.1 is missing"),
])
def test_unknown_architecture_says_what_was_found(tmp_path, state, expect):
    torch.save(state(), tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=expect) as err:
        load_model(tmp_path / "odd.pt")
    msg = _one_line(err.value)
    assert "odd.pt" in msg


def test_head_count_not_dividing_the_channels(tmp_path):
    torch.save(adm_state(**_tiny_adm()), tmp_path / "adm.pt")
    with pytest.raises(CheckpointError, match="head_channels") as err:
        load_checkpoint_file(tmp_path / "adm.pt", head_channels=48)
    _one_line(err.value)


# --- diffusers prediction types -------------------------------------------------------------------
def _diffusers_folder(tmp_path, prediction_type: str):
    """A tiny random UNet2DModel saved as diffusers does, with a DDIM scheduler config that names
    ``prediction_type``; returns (folder, the network)."""
    from diffusers import DDIMScheduler

    from conftest import TINY_UNET
    from shred.models import build_unet

    torch.manual_seed(0)
    unet = build_unet(TINY_UNET).eval()
    folder = tmp_path / prediction_type
    unet.save_pretrained(folder)
    # register_to_config accepts any string, as a config written by another program can hold one.
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    scheduler.register_to_config(prediction_type=prediction_type)
    scheduler.save_config(folder)
    return folder, unet


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_every_prediction_type_is_converted_to_eps_exactly(tmp_path, prediction_type):
    from shred.diffusion import NoiseSchedule

    folder, unet = _diffusers_folder(tmp_path, prediction_type)
    den = load_folder(folder)
    assert den.prediction_type == prediction_type and den.info["prediction_type"] == prediction_type
    abar = NoiseSchedule.linear().abar
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(3, 3, 16, 16, generator=g)
    t = torch.tensor([0, 500, 999])
    with torch.no_grad():
        out = unet(x_t, t).sample.double()
        eps = den(x_t, t).double()
    a = abar[t].view(-1, 1, 1, 1)
    expected = {"epsilon": out,                                                  # eps itself
                "v_prediction": a.sqrt() * out + (1 - a).sqrt() * x_t.double(),  # v = sqrt(a) eps - sqrt(1-a) x0
                "sample": (x_t.double() - a.sqrt() * out) / (1 - a).sqrt()}[prediction_type]
    # float32 network output and conversion; the 1/sqrt(1 - abar_0) = 100 of "sample" at t = 0
    # scales the output's float32 round-off (~1e-7 of values ~1) to ~1e-5.
    torch.testing.assert_close(eps, expected, rtol=1e-5, atol=1e-4 if prediction_type == "sample" else 1e-6)
    if prediction_type != "epsilon":  # and the conversion is not the identity
        assert (eps - out).abs().max() > 0.1


def test_prediction_types_agree_with_the_schedule_at_its_edge(tmp_path):
    # t = -1 is clean data, abar = 1: v = eps there, and a sample-predictor's eps is 0 (undetermined
    # by x_t = x_0; 0 is its expectation, and the analytic prior's exact value).
    from shred.models import GaussianPrior

    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([-1, -1])
    v_folder, v_unet = _diffusers_folder(tmp_path, "v_prediction")
    s_folder, _ = _diffusers_folder(tmp_path, "sample")
    with torch.no_grad():
        torch.testing.assert_close(load_folder(v_folder)(x, t), v_unet(x, t).sample, rtol=0, atol=0)
        assert torch.equal(load_folder(s_folder)(x, t), torch.zeros_like(x))
        prior = GaussianPrior(torch.zeros(3, 16, 16), 0.5)
        assert torch.equal(prior(x.double(), t), torch.zeros_like(x, dtype=torch.float64))


def test_an_unknown_prediction_type_is_refused_in_one_line(tmp_path):
    folder, _ = _diffusers_folder(tmp_path, "flow")
    with pytest.raises(CheckpointError) as e:
        load_folder(folder)
    msg = _one_line(e.value)
    assert "prediction_type 'flow' is not supported" in msg and "epsilon, v_prediction, sample" in msg
    assert "scheduler_config.json" in msg  # names the file that says so
