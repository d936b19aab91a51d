"""The comparison's report: tables per task, realism metrics, grids, all from the run folder.

Per (task, method): PSNR, SSIM, the relative measurement error ||y - A x|| / ||y||, KID and FID on
the feature network (``KID-C10`` / ``FID-C10`` with shred's CIFAR-10 classifier), network calls
per image as counted at the network (and the part that also backpropagates through it), seconds
per image, peak memory and the number of images. Each task's table also has two reference rows at
the same n: the clean test images themselves (the realism floor) and A^+ y (no prior; for blind
deblurring, whose A is unknown, the blurred measurement y, labelled "input y"). Where methods ran on
different numbers of images, a second table scores every method on the images all of them restored,
and a third scores KID and FID on larger sets with fewer methods (:func:`larger_shared_sets`).
"""
from __future__ import annotations

import json
import math
from typing import Any

import torch

from .files import FORMAT, hardware, read_json, read_tensors


def collect(bench, job) -> dict[str, Any] | None:
    """The job's chunks merged: per-image metrics and restorations (None when nothing is done)."""
    per_image: dict[int, dict] = {}
    x0: dict[int, torch.Tensor] = {}
    chunks = []
    for a, b, meta_path in bench.chunks(job):
        meta = read_json(meta_path)
        imgs = read_tensors(meta_path.with_suffix(".safetensors"))["x0"].float()
        chunks.append(meta)
        for j, i in enumerate(range(a, b)):
            if i in per_image:
                continue
            per_image[i] = {k: meta[k][j] for k in ("psnr", "ssim", "measurement_error", "iterations")}
            per_image[i]["lpips"] = meta["lpips"][j] if meta.get("lpips") else None
            x0[i] = imgs[j]
    if not per_image:
        return None
    order = sorted(per_image)
    images = sum(c["images"] for c in chunks)
    return {
        "indices": order, "x0": torch.stack([x0[i] for i in order]),
        "psnr": [per_image[i]["psnr"] for i in order], "ssim": [per_image[i]["ssim"] for i in order],
        "measurement_error": [per_image[i]["measurement_error"] for i in order],
        "lpips": [per_image[i]["lpips"] for i in order] if all(per_image[i]["lpips"] is not None for i in order) else None,
        "calls_per_image": sum(c["image_calls"] for c in chunks) / images,
        "grad_calls_per_image": sum(c["grad_image_calls"] for c in chunks) / images,
        "seconds_per_image": sum(c["seconds"] for c in chunks) / images,
        "peak_memory_gb": max(c["peak_memory_gb"] for c in chunks),
        "config": chunks[0].get("config"), "blind": chunks[0].get("blind"), "hardware": _one_or_all(chunks, "hardware"),
    }


def _one_or_all(chunks: list[dict], key: str) -> Any:
    """The chunks' common ``key`` (the machine they ran on), or the list of its distinct values when
    they differ (a run resumed elsewhere, or with another thread count)."""
    values: list[Any] = []
    for c in chunks:
        if c.get(key) not in values:
            values.append(c.get(key))
    return values[0] if len(values) == 1 else values


def _mean(v) -> float:
    return float(sum(v) / len(v)) if v else float("nan")


def _psnr(v) -> dict[str, Any]:
    """The mean PSNR of per-image values ``{"psnr": mean}``. An image restored exactly has an
    infinite PSNR, and so has the mean: then ``psnr_exact`` counts those images and
    ``psnr_others`` is the mean over the rest (None when every image is exact), so that the table
    still says something (:func:`_psnr_cell`)."""
    out = {"psnr": _mean(v)}
    exact = [p for p in v if math.isinf(p) and p > 0]
    if exact:
        others = [p for p in v if not (math.isinf(p) and p > 0)]
        out.update(psnr_exact=len(exact), psnr_others=_mean(others) if others else None)
    return out


def _psnr_cell(e: dict[str, Any]) -> str:
    """A row's PSNR for the table: ``24.49``, or ``inf (1 exact; 24.53 on 49)``."""
    if e.get("psnr") is None:
        return ""
    if "psnr_exact" not in e:
        return f"{e['psnr']:.2f}"
    k, n = e["psnr_exact"], e["n"]
    rest = f"; {e['psnr_others']:.2f} on {n - k}" if e.get("psnr_others") is not None else ""
    return f"inf ({k} exact{rest})"


class _Realism:
    """The feature network, its reference features (cached in the run folder) and the metric."""

    def __init__(self, bench):
        from ..metrics.features import kid_label, load_feature_net

        cfg = bench.cfg
        self.extractor, self.fid_label = load_feature_net(cfg.features)
        self.kid_label = kid_label(self.fid_label)
        self.bench = bench
        self._ref = None

    def reference(self) -> torch.Tensor:
        if self._ref is None:
            from ..metrics.realism import reference_features

            cfg = self.bench.cfg
            self._ref = reference_features(self.extractor, self.fid_label, cfg.reference, cfg.reference_n,
                                           cache_dir=self.bench.out / "features", identity=cfg.features)
        return self._ref

    def __call__(self, images: torch.Tensor) -> dict[str, float]:
        from ..metrics import extract_features
        from ..metrics.realism import realism

        return realism(extract_features(self.extractor, images), self.reference())


def realism_of(bench) -> _Realism:
    """The realism metrics of ``bench``'s run, made once (its feature network, its reference features)."""
    if getattr(bench, "_realism", None) is None:
        bench._realism = _Realism(bench)
    return bench._realism


def report(bench, log=print) -> dict:
    """Write results.json, results.md and grids/ for everything in the run folder of ``bench`` (a
    :class:`shred.benchmark.Benchmark`)."""
    from ..io import json_bytes, write_all, write_grid
    from ..metrics import psnr, ssim
    from ..metrics.perceptual import lpips_metric

    cfg = bench.cfg
    realism = realism_of(bench) if cfg.features else None
    tasks_out: dict[str, Any] = {}
    for t in cfg.tasks:
        task = bench.tasks[t]
        x, y, op = bench.inputs(task)
        n = x.shape[0]
        shown = _viewable(op, y)
        reference_rows = {"clean images": {"n": n}}
        # The input as a method would start from it: A^+ y; for blind deblurring, where A is
        # unknown, the blurred measurement y itself.
        shown_as = "input y" if task.blind else "A^+ y"
        reference_rows[shown_as] = {"n": n, **_psnr(psnr(shown, x).tolist()),
                                    "ssim": _mean(ssim(shown, x).tolist())}
        if realism is not None and n >= cfg.min_realism_images:
            reference_rows["clean images"].update(realism(x))
            reference_rows[shown_as].update(realism(shown))
        rows: dict[str, Any] = {}
        done: dict[str, dict] = {}  # method -> collect()'s result, for the same-images table
        columns = [("ground truth", x[:4]), ("input", shown[:4])]
        for job in [j for j in bench.jobs if j.task.name == t]:
            if job.skipped:
                rows[job.method] = {"skipped": job.skipped}
                continue
            got = collect(bench, job)
            if got is None:
                rows[job.method] = {"missing": f"0 of {job.n} images done"}
                continue
            entry = {"n": len(got["indices"]), "n_planned": job.n,
                     **_psnr(got["psnr"]), "ssim": _mean(got["ssim"]),
                     "lpips": _mean(got["lpips"]) if got["lpips"] else None,
                     "measurement_error": _mean(got["measurement_error"]),
                     **{k: got[k] for k in ("calls_per_image", "grad_calls_per_image", "seconds_per_image",
                                            "peak_memory_gb", "config", "hardware")},
                     **({"blind": got["blind"]} if got.get("blind") else {}),
                     "settings": job.settings, "key": job.key}
            if realism is not None and entry["n"] >= cfg.min_realism_images:
                entry.update(realism(got["x0"]))
            rows[job.method] = entry
            done[job.method] = got
            if got["indices"][:4] == list(range(min(4, n))):
                columns.append((job.method, got["x0"][:4]))
        (bench.out / "grids").mkdir(parents=True, exist_ok=True)
        write_grid(bench.out / "grids" / f"{t}.png", columns)
        tasks_out[t] = {"label": task.label, "n": n, "indices": bench.data["indices"][:n],
                        "operator": op.spec(), "rows": rows, "reference_rows": reference_rows}
        same = same_images(done, rows, x, shown, shown_as, realism, cfg.min_realism_images)
        if same is not None:
            tasks_out[t]["same_images"] = same
            larger = larger_shared_sets(done, rows, x, realism, same["n"])
            if larger:
                tasks_out[t]["larger_shared_sets"] = larger
    # The machine the methods ran on (their seconds per image are its), not the one writing this
    # report: `--report-only` may run elsewhere, or with another number of threads.
    ran_on = [r["hardware"] for b in tasks_out.values() for r in b["rows"].values() if r.get("hardware")]
    several = any(h != ran_on[0] for h in ran_on)
    results = {"format": FORMAT, "config": _plain(cfg),
               # None when the methods ran on several machines (each row says which); the machine
               # writing the report only when no method has run yet.
               "hardware": None if several else ran_on[0] if ran_on else hardware(), "hardware_varies": several,
               "fid_label": realism.fid_label if realism else None, "kid_label": realism.kid_label if realism else None,
               "reference": {"data": cfg.reference, "n": cfg.reference_n} if realism else None,
               "lpips": lpips_metric()[1], "tasks": tasks_out}
    write_all([(bench.out / "results.json", json_bytes(results)),   # both or neither
               (bench.out / "results.md", markdown(results).encode())])
    return results


def same_images(done: dict[str, dict], rows: dict[str, dict], x: torch.Tensor, shown: torch.Tensor, shown_as: str,
                realism, min_n: int) -> dict | None:
    """Every method's metrics on the images that all of them restored, when some ran on fewer
    images than others (``--max-images``): KID is unbiased in n, but different image sets are
    not the same test. Only methods with at least ``min_n`` images take part; None when that
    leaves fewer than two methods, fewer than ``min_n`` shared images, or nothing to correct.

    Returns ``{"n", "positions", "methods", "rows", "reference_rows"}``; ``positions`` index the
    task's images (its ``indices``), the rows hold PSNR, SSIM, the relative residual and, with a
    feature network, KID/FID."""
    if realism is None:
        return None
    big = {m: g for m, g in done.items() if len(g["indices"]) >= min_n}
    if len(big) < 2:
        return None
    shared = sorted(set.intersection(*(set(g["indices"]) for g in big.values())))
    if len(shared) < min_n or all(len(g["indices"]) == len(shared) for g in big.values()):
        return None
    out = {}
    for m, g in big.items():
        if g["indices"] == shared and "kid" in rows[m]:  # ran on exactly these images: its own row
            out[m] = {k: rows[m][k] for k in ("psnr", "psnr_exact", "psnr_others", "ssim", "measurement_error", "n",
                                              "kid", "kid_std", "fid") if k in rows[m]}
            continue
        at = {i: j for j, i in enumerate(g["indices"])}
        pick = [at[i] for i in shared]
        out[m] = {**_psnr([g["psnr"][j] for j in pick]), "ssim": _mean([g["ssim"][j] for j in pick]),
                  "measurement_error": _mean([g["measurement_error"][j] for j in pick]), "n": len(shared),
                  **realism(g["x0"][pick])}
    reference_rows = {"clean images": {"n": len(shared), **realism(x[shared])},
                      shown_as: {"n": len(shared), **realism(shown[shared])}}
    return {"n": len(shared), "positions": shared, "methods": sorted(big), "rows": out,
            "reference_rows": reference_rows}


def larger_shared_sets(done: dict[str, dict], rows: dict[str, dict], x: torch.Tensor, realism,
                       above: int) -> list[dict]:
    """KID and FID on larger image sets than the same-images table's ``above`` images, one per size
    N that some method ran on: every method with at least N images, scored on the images all of
    them restored. Fewer methods take part as N grows (a method that ran on 20 images is in no
    set above 20), so these sets do not decide a comparison with every method; they show whether
    its ranking holds on more images (at n = 20 differences of a few KID units are noise).

    Returns ``[{"n", "positions", "methods", "rows": {method: {kid, kid_std, fid}},
    "reference_rows": {"clean images": {...}}}]``, smallest N first; [] without a feature network
    or when fewer than two methods ran on more than ``above`` images."""
    if realism is None:
        return []
    out = []
    for size in sorted({len(g["indices"]) for g in done.values()}):
        if size <= above:
            continue
        big = {m: g for m, g in done.items() if len(g["indices"]) >= size}
        if len(big) < 2:  # one method alone is no comparison
            break
        shared = sorted(set.intersection(*(set(g["indices"]) for g in big.values())))
        if len(shared) <= above or (out and out[-1]["positions"] == shared):
            continue
        scored = {}
        for m, g in big.items():
            if g["indices"] == shared and "kid" in rows[m]:  # ran on exactly these images: its own row
                scored[m] = {k: rows[m][k] for k in ("kid", "kid_std", "fid")}
                continue
            at = {i: j for j, i in enumerate(g["indices"])}
            scored[m] = realism(g["x0"][[at[i] for i in shared]])
        out.append({"n": len(shared), "positions": shared, "methods": sorted(big), "rows": scored,
                    "reference_rows": {"clean images": {"n": len(shared), **realism(x[shared])}}})
    return out


def _plain(cfg) -> dict:
    from dataclasses import asdict
    return json.loads(json.dumps(asdict(cfg)))


def _viewable(op, y):
    """Measurements shown at image size: A^+ y where y is smaller or has fewer channels."""
    if tuple(op.out_shape) == tuple(op.in_shape) and op.measurement_weight() is None:
        return y
    return op.pinv(y.double()).float().clamp(0, 1)


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def markdown(results: dict) -> str:
    """Per task, a table of every method and the two reference rows."""
    cfg = results["config"]
    kid, fid = results.get("kid_label"), results.get("fid_label")
    hw = results["hardware"]
    machine = (f"{hw.get('gpu') or hw['cpu']}, {hw['cpu_threads']} threads, torch {hw['torch']}"
               if not results.get("hardware_varies") else "the methods ran on several machines: each row's "
               "`hardware` in results.json")
    lines = [f"Model `{cfg['model']}`, images of `{cfg['data']}` (seeded choice, seed {cfg['seed']}); "
             f"batch {cfg['batch']}; device {cfg['device']} ({machine}).", ""]
    if kid:
        ref = results["reference"]
        lines += [f"{kid} (x1e3, mean ± std over subsets) and {fid} against {ref['n']} images of "
                  f"`{ref['data']}`; computed for n >= {cfg['min_realism_images']}. LPIPS: {results['lpips']}.", ""]
    lines += ["Columns: PSNR (dB), SSIM, realism, relative measurement error ||y - A x|| / ||y||, network calls "
              "per image (of which with backpropagation through the network), seconds per image, images.", ""]
    for t, block in results["tasks"].items():
        lines += [f"### {block['label']} (n = {block['n']})", "",
                  f"| method | PSNR | SSIM | {kid or 'KID'} x1e3 | {fid or 'FID'} | residual | calls/img | s/img | n |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, e in block["reference_rows"].items():
            lines.append(f"| *{name}* | {_psnr_cell(e)} | {_fmt(e.get('ssim'), '.3f')} | "
                         f"{_kid(e)} | {_fmt(e.get('fid'), '.2f')} | | | | {e['n']} |")
        for m, e in block["rows"].items():
            if "skipped" in e or "missing" in e:
                lines.append(f"| {m} | {e.get('skipped') or e.get('missing')} | | | | | | | |")
                continue
            calls = f"{e['calls_per_image']:.0f}" + (f" ({e['grad_calls_per_image']:.0f})" if e["grad_calls_per_image"] else "")
            n = f"{e['n']}" if e["n"] == e["n_planned"] else f"{e['n']} of {e['n_planned']}"
            lines.append(f"| {m} | {_psnr_cell(e)} | {e['ssim']:.3f} | {_kid(e)} | {_fmt(e.get('fid'), '.2f')} | "
                         f"{e['measurement_error']:.4f} | {calls} | {e['seconds_per_image']:.2f} | {n} |")
        lines.append("")
        same = block.get("same_images")
        if same:
            lines += [f"The same {same['n']} images for every method with {cfg['min_realism_images']} or more "
                      "(methods ran on different numbers of images; this table compares like with like):", "",
                      f"| method | PSNR | SSIM | {kid or 'KID'} x1e3 | {fid or 'FID'} | residual | n |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            for name, e in same["reference_rows"].items():
                lines.append(f"| *{name}* | | | {_kid(e)} | {_fmt(e.get('fid'), '.2f')} | | {e['n']} |")
            for m, e in same["rows"].items():
                lines.append(f"| {m} | {_psnr_cell(e)} | {e['ssim']:.3f} | {_kid(e)} | {_fmt(e.get('fid'), '.2f')} | "
                             f"{e['measurement_error']:.4f} | {e['n']} |")
            lines.append("")
        larger = block.get("larger_shared_sets")
        if larger:
            lines += larger_table(larger, kid or "KID", list(block["rows"]))
    return "\n".join(lines)


LARGER = "On larger shared image sets"  # the report's third paragraph per task (bench/fill_results_tables.py)


def larger_table(sets: list[dict], kid: str, order: list[str]) -> list[str]:
    """The markdown of :func:`larger_shared_sets`: one KID column per set size, blank where a
    method is not in that set. ``order``: the methods in the order of the task's first table."""
    sizes = [s["n"] for s in sets]
    lines = [f"{LARGER} ({kid} x1e3; every method that restored at least n images, on the images all of "
             "them restored; a blank: the method ran on fewer):", "",
             "| method | " + " | ".join(f"n = {n}" for n in sizes) + " |",
             "| --- | " + " | ".join("---" for _ in sizes) + " |"]
    lines.append("| *clean images* | " + " | ".join(_kid(s["reference_rows"]["clean images"]) for s in sets) + " |")
    for m in [m for m in order if m in sets[0]["methods"]]:
        lines.append(f"| {m} | " + " | ".join(_kid(s["rows"][m]) if m in s["rows"] else "" for s in sets) + " |")
    lines.append("")
    return lines


def _kid(e: dict) -> str:
    return "" if e.get("kid") is None else f"{1e3 * e['kid']:.2f} ± {1e3 * e['kid_std']:.2f}"
