"""Reference restorations of the SHRED loop as it was before its rewrite (commit 56d2c78), for
tests/test_solver.py: run from the project root to write tests/data/shred_loop_reference.safetensors."""
import torch
from shred.models import GaussianPrior
from shred.operators import TaskOptions, build_task
from shred.solvers import build_solver, to_image_space

g = torch.Generator().manual_seed(0)
mu = torch.rand(3, 16, 16, generator=g, dtype=torch.float64) - 0.5
sigma = 0.1 + 0.2 * torch.rand(3, 16, 16, generator=g, dtype=torch.float64)
prior = GaussianPrior(mu, sigma)
clean = to_image_space(prior.sample(2, torch.Generator().manual_seed(1))).float()
cases = {
    "authors_sr": ("shred@authors-code", "sr", TaskOptions(scale=4), dict(iterations=4)),
    "paper_inpaint": ("shred@paper", "inpaint", TaskOptions(box_size=6), dict(iterations=4)),
    "bundled_cs_plateau": ("shred@bundled", "cs", TaskOptions(fraction=0.2), dict(iterations=14, stop="plateau", lr_decay="cosine", lr=0.001)),
    "authors_noisy_discrepancy": ("shred@authors-code", "sr", TaskOptions(scale=2, sigma_y=0.1), dict(iterations=8, stop="discrepancy", tau=1.1, lr=0.05)),
    "blind": ("shred-blind@authors-code", "blind-deblur", TaskOptions(kernel="random", kernel_size=5), dict(iterations=4)),
    "inversion_init": ("shred@authors-code", "sr", TaskOptions(scale=2), dict(iterations=3, init="ddim-inversion")),
}
out = {}
for name, (method, task, opts, settings) in cases.items():
    op = build_task(task, (3, 16, 16), opts, torch.Generator().manual_seed(0))
    y = op.degrade(clean.double(), generator=torch.Generator().manual_seed(2)).float()
    res = build_solver(method, prior, task=task, **settings)(y, op, seeds=[3, 4])
    out[f"{name}.x0"] = res.x0.contiguous()
    out[f"{name}.loss"] = res.loss_history.contiguous()
    out[f"{name}.iterations"] = res.iterations.contiguous()
    if "kernel" in res.extras:
        out[f"{name}.kernel"] = res.extras["kernel"].contiguous()
from safetensors.torch import save_file
save_file(out, "tests/data/shred_loop_reference.safetensors")
print({k: tuple(v.shape) for k, v in out.items()})
