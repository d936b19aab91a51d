"""What a restoration run reports: one row per seed, the spread of the solutions, kernel images.

Used by ``shred-ir restore`` (its printed table and ``--report out.json``) and usable from Python:

>>> rows = seed_rows(result, operator, y, clean=x)          # one dict per restoration
>>> summary = run_summary(result, rows)                     # diversity, means, stop rule
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .operators import Blur, Operator, SpatiallyVaryingBlur, unwrap
from .solvers.base import Result


def estimated_operators(result: Result, operator: Operator) -> list[Operator]:
    """The operator each restoration was fitted with: its estimated blur for blind solvers
    (``extras["operators"]``), otherwise ``operator`` itself."""
    ops = result.extras.get("operators")
    return list(ops) if ops else [operator] * result.x0.shape[0]


def measurement_residuals(result: Result, operator: Operator, y: torch.Tensor) -> torch.Tensor:
    """||y - H_i(x0_i)|| per restoration, [B] float64, over the measured entries only."""
    y = y.double().cpu()
    x0 = result.x0.double().cpu()
    weight = operator.measurement_weight()
    out = []
    for i, op in enumerate(estimated_operators(result, operator)):
        r = y[min(i, y.shape[0] - 1)] - op.A(x0[i:i + 1])[0]
        if weight is not None:
            r = r * weight.double()
        out.append(r.norm())
    return torch.stack(out)


def _true_kernel(operator: Operator) -> torch.Tensor | None:
    """The blur kernel inside ``operator``: [kh, kw] for a uniform blur, [gh, gw, kh, kw] for a
    spatially varying one; None when it holds no blur."""
    inner = unwrap(operator)
    if isinstance(inner, Blur):
        return inner.kernel
    if isinstance(inner, SpatiallyVaryingBlur):
        return inner.kernels
    return None


def seed_rows(result: Result, operator: Operator, y: torch.Tensor, clean: torch.Tensor | None = None,
              true_operator: Operator | None = None) -> list[dict[str, Any]]:
    """One JSON-safe row per restoration.

    Columns: ``seed``, ``iterations``, ``loss`` (final), ``rel_error`` ||y - H x0|| / ||y||,
    ``noise_ratio`` ||y - H x0|| / (sigma_y sqrt(m)) when a noise level was estimated by the stop
    rule or is known (1 = at the discrepancy-principle level), ``psnr`` / ``ssim`` against
    ``clean`` (``psnr_exact``: True when x0 equals ``clean``, whose PSNR is infinite and which
    JSON writes as null), ``kernel_ncc`` (estimated vs. true kernel, up to shift) when the result holds a
    kernel and ``true_operator`` (e.g. the spec's) carries one, and ``kernel_sigma`` (pixels) when the
    blind kernel search chose a Gaussian blur.
    """
    from .metrics import kernel_ncc, psnr, ssim

    res_norm = measurement_residuals(result, operator, y)
    weight = operator.measurement_weight()
    yy = y.double().cpu() * (weight.double() if weight is not None else 1)
    y_norm = yy.flatten(1).norm(dim=1).clamp_min(1e-12)
    m = operator.num_measurements()
    sigma = None
    stop = result.extras.get("stop")
    if stop and stop.get("sigma_y") and stop.get("sigma_source") == "mad":
        sigma = stop["sigma_y"]  # estimated: the noise was not declared (perhaps only a file's rounding)
    elif operator.declared_sigma_y > 0:  # a file's rounding alone is not a known noise level
        sigma = [operator.sigma_y] * len(result.seeds)
    elif stop and stop.get("sigma_y"):
        sigma = stop["sigma_y"]
    ncc = None
    true_k = _true_kernel(true_operator) if true_operator is not None else None
    if true_k is not None and "kernel" in result.extras:
        est = result.extras["kernel"].double()
        if est.dim() == true_k.dim() + 1:
            ncc = kernel_ncc(est.reshape(-1, *est.shape[-2:]),
                             true_k.reshape(-1, *true_k.shape[-2:]).repeat(est.shape[0], 1, 1))
            ncc = ncc.view(est.shape[0], -1).mean(1)  # mean over the cells of a grid
    quality = None
    if clean is not None:
        x0 = result.x0.double().cpu()
        ref = clean.double().cpu().expand_as(x0)
        quality = (psnr(x0, ref), ssim(x0, ref))
    rows = []
    for i, seed in enumerate(result.seeds):
        it = int(result.iterations[i])
        row: dict[str, Any] = {"seed": seed, "iterations": it,
                               "loss": float(result.loss_history[it - 1, i]) if it > 0 else None,
                               "rel_error": float(res_norm[i] / y_norm[min(i, y_norm.shape[0] - 1)])}
        s = sigma[i] if sigma is not None else None
        row["noise_ratio"] = (float(res_norm[i] / (s * math.sqrt(m))) if s is not None and s > 0 else None)
        if quality is not None:
            row["psnr"], row["ssim"] = float(quality[0][i]), float(quality[1][i])
            if math.isinf(row["psnr"]):
                row["psnr_exact"] = True  # x0 equals the clean image; JSON writes the PSNR as null
        if ncc is not None:
            row["kernel_ncc"] = float(ncc[i])
        if "kernel_sigma" in result.extras:  # the blur the kernel search chose (px)
            row["kernel_sigma"] = float(result.extras["kernel_sigma"][i])
        rows.append(row)
    return rows


def run_summary(result: Result, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the seeds, the diversity (mean pairwise RMS distance, for two or more seeds),
    the stop rule and the wall time."""
    from .metrics import diversity

    out: dict[str, Any] = {"seeds": len(rows), "wall_time_s": round(result.wall_time, 3)}
    for key in ("rel_error", "noise_ratio", "psnr", "ssim", "kernel_ncc"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            out[f"mean_{key}"] = sum(vals) / len(vals)
    exact = sum(1 for r in rows if r.get("psnr_exact"))
    if exact:
        # Restorations equal to the clean image: mean_psnr is infinite (null in JSON); the mean
        # over the others, as the bench's psnr_others (None when every one is exact).
        others = [r["psnr"] for r in rows if r.get("psnr") is not None and not r.get("psnr_exact")]
        out["psnr_exact"] = exact
        out["psnr_others"] = sum(others) / len(others) if others else None
    if len(rows) >= 2:
        out["diversity_rmse"] = diversity(result.x0.float().cpu())
    if "stop" in result.extras:
        out["stop"] = result.extras["stop"]
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (columns that every row leaves empty are dropped)."""
    cols = [("seed", "seed", "{}"), ("iterations", "iters", "{}"), ("loss", "loss", "{:.3g}"),
            ("rel_error", "rel. error", "{:.4f}"), ("noise_ratio", "resid/noise", "{:.3f}"),
            ("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("kernel_ncc", "kernel NCC", "{:.4f}")]
    cols = [c for c in cols if any(r.get(c[0]) is not None for r in rows)]
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append(["-" if r.get(k) is None else f.format(r[k]) for k, _, f in cols])
    widths = [max(len(row[j]) for row in cells) for j in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def kernel_image(k: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """A kernel as a grey image [1, 1, H, W] in [0, 1], scaled so that its largest entry is white
    (as SelfDeblur saves them). A grid [gh, gw, kh, kw] becomes a mosaic with ``pad`` grey pixels
    between cells."""
    k = k.detach().double().cpu()
    if k.dim() == 2:
        k = k[None, None]
    gh, gw, kh, kw = k.shape
    canvas = torch.full((gh * (kh + pad) - pad, gw * (kw + pad) - pad), 0.5, dtype=torch.float64)
    for i in range(gh):
        for j in range(gw):
            cell = k[i, j]
            canvas[i * (kh + pad):i * (kh + pad) + kh, j * (kw + pad):j * (kw + pad) + kw] = cell / cell.max().clamp_min(1e-30)
    return canvas[None, None].float()


def spread_image(std: torch.Tensor) -> tuple[torch.Tensor, float]:
    """An uncertainty map [1, 1, H, W] as a grey image in [0, 1] scaled so that its largest value is
    white (black everywhere when the seeds agree); returns (image, the largest std)."""
    top = float(std.max())
    return (std / top if top > 0 else torch.zeros_like(std)).float(), top
