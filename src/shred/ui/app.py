"""The browser page of ``shred-ir ui``: a gradio ``Blocks`` over :mod:`shred.ui.session`.

Widgets become a :class:`shred.ui.session.PageRequest`; the run is :func:`session.restore_page`
(which calls :func:`shred.restore`); this module only lays out the page, follows SHRED's tqdm bar
with ``gr.Progress(track_tqdm=True)``, serialises runs (one network at a time), wires the Stop
button, and shows every :class:`shred.errors.ShredError` as one message in the page.

Importing this module imports gradio (a few seconds); ``shred.ui.command`` imports it only when the
``ui`` command runs.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

# Offline by design: no usage statistics sent to gradio's servers.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from ..errors import ShredError  # noqa: E402
from ..operators import TASKS, TaskOptions  # noqa: E402
from . import session  # noqa: E402
from .session import MODE_LABELS, PageRequest, Stopped  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "chelsea-32.png"
KEEP_RUNS = 20  # run folders kept for downloads; older ones are deleted
DISPLAY_SIDE = 192  # gallery tiles are scaled up (nearest) to about this many pixels

# Small images (32x32) are shown large and crisp; the files keep their size.
CSS = """
#result img, #gallery img, #editor canvas { image-rendering: pixelated; }
#result img { width: auto; height: 100%; min-height: 240px; object-fit: contain; }
"""

SIZE_POLICY = (
    "**Size policy.** The model restores images of one size (32x32 for the bundled CIFAR-10 model). "
    "In *degrade* mode the clean image must have that size; in *restore* mode the measurement must have "
    "the size the task implies (8x8 for x4 super-resolution of a 32x32 model). shred never resizes "
    "silently: tick **Resize** to centre-crop and resample (bicubic) an image of another size, as "
    "`shred-ir restore --resize` does; a painted or uploaded mask is resampled with it.")


class Page:
    """The page's state shared by all visitors: loaded models, the run lock, Stop flags, files.

    Args:
        model: the model offered first (a registry name, folder or checkpoint; default: the
            bundled RGB model). The page offers it and the bundled models, nothing typed in.
        device: ``"cpu"``, ``"cuda"``, ... (default: cuda when available).
    """

    def __init__(self, model: str | None = None, device: str | None = None):
        from ..models import bundled_models, default_model

        from ..models.fast import resolve_device

        self.device = resolve_device(device)  # an unknown or absent device: one line, before any loading
        self.default = model or default_model(3)
        self.models = list(dict.fromkeys([self.default, *(e.name for e in bundled_models())]))
        self._loaded: dict[str, Any] = {}
        self._run_lock = threading.Lock()  # the queue runs one job at a time; this also covers
        # a job whose client went away while its thread still computes
        self._stops: dict[str, threading.Event] = {}
        self.root = Path(tempfile.mkdtemp(prefix="shred-ui-"))
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)
        self.denoiser(self.default)  # a bad --model fails at start, not at the first run

    def denoiser(self, name: str):
        """The loaded denoiser of ``name`` (one of :attr:`models`), on :attr:`device`."""
        from ..models import load_model

        if name not in self.models:
            raise ShredError(f"unknown model {name!r}; this page offers {', '.join(self.models)}")
        if name not in self._loaded:
            self._loaded[name] = load_model(name, device=self.device)
        return self._loaded[name]

    def workdir(self, kind: str = "run") -> Path:
        """A new folder for one run's (or one upload's) files; the oldest beyond KEEP_RUNS go."""
        runs = sorted(self.root.glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime)
        for old in runs[:max(0, len(runs) - KEEP_RUNS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.root))

    def stop_event(self, request: gr.Request | None) -> threading.Event:
        """The Stop flag of the visitor's session (one per browser tab or API client)."""
        return self._stops.setdefault(getattr(request, "session_hash", None) or "-", threading.Event())

    def forget_stop(self, request: gr.Request | None) -> None:
        """Drop the session's Stop flag once its run has ended (Stop acts on a running job only)."""
        self._stops.pop(getattr(request, "session_hash", None) or "-", None)


def _display(t: torch.Tensor):
    """A [1, C, H, W] image in [0, 1] as a PIL image scaled up (nearest) for the gallery."""
    import io as _io

    from PIL import Image

    from ..io import image_bytes

    img = Image.open(_io.BytesIO(image_bytes(t, ".png")))
    k = max(1, DISPLAY_SIDE // max(img.size))
    return img.resize((img.width * k, img.height * k), Image.NEAREST)


def _editor_files(value, folder: Path) -> tuple[str | None, tuple[str, ...]]:
    """Write the ImageEditor's value (type="numpy": RGBA arrays [H, W, 4] in 0..255) as PNG files in
    ``folder``; returns (the image file, the brush layer files).

    The editor hands arrays, not gradio's cached files: events running at once (the info panel, a
    run) rewrite the same cache file, and a reader could catch it half-written."""
    import numpy as np
    from PIL import Image

    if not value:
        return None, ()
    folder = Path(folder)
    background = value.get("background")
    image = None
    if background is not None:
        arr = np.asarray(background)
        image = folder / "image.png"
        Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).save(image)  # alpha dropped, as read_image does
    layers = []
    for i, layer in enumerate(value.get("layers") or []):
        if layer is not None:
            path = folder / f"stroke{i}.png"
            Image.fromarray(np.asarray(layer)).save(path)
            layers.append(str(path))
    return (str(image) if image else None), tuple(layers)


def _file(value) -> str | None:
    if not value:
        return None
    return str(getattr(value, "name", value))


def _int_or_none(v, what: str) -> int | None:
    """A whole number >= 1, or None for 0 / empty (the page's "use the default")."""
    if v is None or v == "" or float(v) == 0:
        return None
    if float(v) != int(float(v)) or float(v) < 0:
        raise ShredError(f"{what} must be a positive whole number (0: the default), got {v}")
    return int(float(v))


def _page_request(folder, mode, image, image_file, mask_file, clean_file, task, scale, fraction, box_size, kernel,
                  kernel_size, kernel_sigma, sigma_y, preset, iterations, lr, seeds, degrade_seed,
                  resize) -> PageRequest:
    """Widget values to a PageRequest (the editor's image and strokes written to ``folder``); a
    malformed value raises ShredError."""
    from ..seeding import parse_seeds

    background, strokes = _editor_files(image, folder)
    chosen = (task or "").strip()
    used = session.options_of(chosen)
    given: dict[str, Any] = {}
    if "scale" in used:
        given["scale"] = _int_or_none(scale, "the scale") or TaskOptions.scale
    if "fraction" in used and fraction is not None:
        if not 0 < float(fraction) <= 1:
            raise ShredError(f"the kept fraction must be in (0, 1], got {fraction}")
        given["fraction"] = float(fraction)
    if "box_size" in used:
        given["box_size"] = _int_or_none(box_size, "the box side")
    if "kernel" in used and kernel:
        given["kernel"] = str(kernel)
    if "kernel_size" in used:
        given["kernel_size"] = _int_or_none(kernel_size, "the kernel side")
        if given["kernel_size"] is not None and given["kernel_size"] % 2 == 0:
            raise ShredError(f"the kernel side must be odd, got {given['kernel_size']}")
    if "kernel_sigma" in used and kernel_sigma is not None:
        if not float(kernel_sigma) > 0:
            raise ShredError(f"the kernel std must be > 0, got {kernel_sigma}")
        given["kernel_sigma"] = float(kernel_sigma)
    if sigma_y is not None and float(sigma_y) != 0:
        given["sigma_y"] = float(sigma_y)
    lr = float(lr) if lr not in (None, "") else 0.0
    if not (lr >= 0 and lr != float("inf")):
        raise ShredError(f"the learning rate must be > 0 (0: the preset's), got {lr}")
    return PageRequest(
        mode=mode or "degrade", image=_file(image_file) or background, strokes=strokes,
        mask_file=_file(mask_file), clean_file=_file(clean_file), task=chosen,
        options=TaskOptions(**given), preset=preset or "auto", iterations=_int_or_none(iterations, "iterations"),
        lr=lr or None, seeds=tuple(parse_seeds(seeds if seeds not in (None, "") else "0")),
        degrade_seed=int(degrade_seed or 0), resize=bool(resize))


def _message(exc: Exception, *files) -> str:
    """The error's text with gradio's temporary upload paths shortened to the files' names."""
    text = str(exc)
    for f in files:
        for path in ([f] if isinstance(f, str) else f or ()):
            if path:
                text = text.replace(str(path), Path(path).name)
    return text


def _internal(exc: Exception) -> gr.Error:
    """A bug, as one line in the page (the traceback goes to the server's terminal)."""
    traceback.print_exc(file=sys.stderr)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return gr.Error(f"internal error: {type(exc).__name__}: {first} (the server log has the traceback; "
                    "please report it)", print_exception=False)


def build_app(model: str | None = None, device: str | None = None) -> gr.Blocks:
    """The page as a ``gr.Blocks`` (queued: one restoration at a time). Raises ShredError when
    ``model`` cannot be loaded."""
    from ..solvers import PRESETS

    page = Page(model, device)
    tasks = session.task_choices()
    defaults = TaskOptions()

    # delete_cache: gradio's copies of uploads and results older than an hour, checked hourly.
    with gr.Blocks(title="shred: restore an image", delete_cache=(3600, 3600)) as demo:
        demo.shred_page = page  # for tests and the command
        gr.Markdown("# shred: zero-shot image restoration in the browser\n"
                    "SHRED optimises the input noise x_T of a few-step DDIM so that the model's image "
                    "explains the degraded one. Pick an image (or the sample), a task and Run. "
                    f"Network on **{page.device}**; one restoration runs at a time, others wait in the queue.")
        with gr.Row():
            with gr.Column(scale=1):
                mode = gr.Radio([(label, key) for key, label in MODE_LABELS.items()], value="degrade",
                                label="What the image is", elem_id="mode")
                editor = gr.ImageEditor(
                    label="Image (inpaint-mask: paint the hole with the brush)", type="numpy",
                    format="png", image_mode="RGBA", sources=["upload", "clipboard"], transforms=(),
                    layers=False, brush=gr.Brush(default_size=2, colors=["#ff00ff"], color_mode="fixed"),
                    elem_id="editor", height=420)
                sample = gr.Button(f"Use the sample ({SAMPLE.name}: Chelsea the cat, 32x32, CC0)",
                                   elem_id="sample", size="sm")
                with gr.Accordion("Files (optional)", open=False):
                    image_file = gr.File(label="Image file instead of the editor's (PNG, JPEG, or .npy in [0, 1])",
                                         file_types=[".png", ".jpg", ".jpeg", ".npy"], elem_id="image_file")
                    mask_file = gr.File(label="Mask file for inpaint-mask (PNG white = kept, .npy non-zero = kept)",
                                        file_types=[".png", ".jpg", ".jpeg", ".npy"], elem_id="mask_file")
                    clean_file = gr.File(label="Clean image, in restore mode (for PSNR/SSIM)",
                                         file_types=[".png", ".jpg", ".jpeg", ".npy"], elem_id="clean_file")
                info = gr.Markdown(elem_id="info")
                gr.Markdown(SIZE_POLICY)
            with gr.Column(scale=1):
                model_box = gr.Dropdown(page.models, value=page.default, label="Model", elem_id="model")
                task = gr.Dropdown(tasks, value="sr", allow_custom_value=True, elem_id="task",
                                   label="Task (from the registry; chains like colorize+sr can be typed)",
                                   info=TASKS["sr"].help)
                with gr.Group():
                    scale = gr.Number(defaults.scale, precision=0, minimum=1, label="Scale (super-resolution factor)")
                    fraction = gr.Number(defaults.fraction, minimum=0, maximum=1, label="Kept fraction (cs)",
                                         visible=False)
                    box_size = gr.Number(0, precision=0, minimum=0, label="Box side (0: half the image side)",
                                         visible=False)
                    kernel = gr.Dropdown(["gaussian", "random"], value=defaults.kernel, label="Kernel", visible=False)
                    kernel_size = gr.Number(0, precision=0, minimum=0, label="Kernel side, odd (0: the task's)",
                                            visible=False)
                    kernel_sigma = gr.Number(defaults.kernel_sigma, minimum=0, label="Kernel std (pixels)",
                                             visible=False)
                    sigma_y = gr.Number(defaults.sigma_y, minimum=0, label="Measurement noise std sigma_y ([0, 1] units)")
                preset = gr.Dropdown(["auto", *PRESETS], value="auto", label="Preset", elem_id="preset")
                with gr.Row():
                    iterations = gr.Number(0, precision=0, minimum=0, label="Iterations (0: the preset's)",
                                           elem_id="iterations")
                    lr = gr.Number(0, minimum=0, label="Learning rate (0: the preset's)", elem_id="lr")
                with gr.Row():
                    seeds = gr.Textbox("0", label="Seeds (0, 0-3 or 0,5,9: one restoration each)", elem_id="seeds")
                    degrade_seed = gr.Number(0, precision=0, label="Degradation seed (masks, kernels, noise)")
                resize = gr.Checkbox(False, label="Resize an image of the wrong size (centre crop + bicubic)",
                                     elem_id="resize")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            result = gr.Image(label="Restored (first seed)", type="filepath", format="png", interactive=False,
                              elem_id="result", height=300)
            gallery = gr.Gallery(label="Measurement, restorations, mean and uncertainty", format="png",
                                 columns=4, height=300, elem_id="gallery", interactive=False)
        metrics = gr.Markdown(elem_id="metrics")
        command = gr.Textbox(label="The same problem on the command line (with the downloads below)", lines=1,
                             interactive=False, buttons=["copy"], elem_id="command")
        with gr.Row():
            dl_restored = gr.DownloadButton("restored.png", visible=False, elem_id="dl_restored")
            dl_grid = gr.DownloadButton("grid.png", visible=False, elem_id="dl_grid")
            dl_spec = gr.DownloadButton("spec.json", visible=False, elem_id="dl_spec")
            dl_measurement = gr.DownloadButton("measurement.npy", visible=False, elem_id="dl_measurement")

        option_boxes = {"scale": scale, "fraction": fraction, "box_size": box_size, "kernel": kernel,
                        "kernel_size": kernel_size, "kernel_sigma": kernel_sigma}
        request_inputs = [mode, editor, image_file, mask_file, clean_file, task, scale, fraction, box_size, kernel,
                          kernel_size, kernel_sigma, sigma_y, preset, iterations, lr, seeds, degrade_seed, resize]

        # -- before running: options of the task, sizes, the kept fraction of the mask --------------
        def show_options(name):
            used = session.options_of(name)
            entry = TASKS.get((name or "").strip())
            return [gr.Dropdown(info=entry.help if entry else "a chain: the tasks apply left to right")] + [
                gr.update(visible=key in used) for key in option_boxes]

        task.change(show_options, task, [task, *option_boxes.values()], queue=False, api_visibility="private")

        def describe(model_name, *values):
            try:
                with tempfile.TemporaryDirectory(dir=page.root) as folder:
                    return session.describe(_page_request(folder, *values), page.denoiser(model_name))
            except ShredError as exc:
                return f"**Problem:** {exc}"
            except Exception as exc:  # never let the info panel raise
                return f"**Problem:** {type(exc).__name__}: {exc}"

        # Not image_file.change: an uploaded file reaches the editor (show_file), whose change is listened to,
        # and the editor's own uploads clear image_file, which must not recompute with a stale editor value.
        for trigger in (mode.change, editor.change, editor.upload, mask_file.change, model_box.change,
                        task.change, scale.change, fraction.change, box_size.change, kernel_size.change,
                        degrade_seed.change, resize.change):
            trigger(describe, [model_box, *request_inputs], info, api_visibility="private",
                    show_progress="hidden", concurrency_limit=None)

        def use_sample():
            return {"background": str(SAMPLE), "layers": [], "composite": str(SAMPLE)}, None

        sample.click(use_sample, None, [editor, image_file], queue=False, api_name="sample")

        def show_file(path):
            """Put an uploaded image file (also .npy) into the editor, for painting over it."""
            if not path:
                return gr.update()
            from ..io import image_bytes, read_image
            try:
                x = read_image(_file(path))
            except ShredError as exc:
                raise gr.Error(_message(exc, _file(path)), print_exception=False) from None
            png = page.workdir("upload") / "uploaded.png"
            png.write_bytes(image_bytes(x, ".png"))
            return {"background": str(png), "layers": [], "composite": str(png)}

        image_file.upload(show_file, image_file, editor, api_visibility="private")
        # An image dropped on the editor replaces an earlier image file (the file would win at Run).
        editor.upload(lambda: None, None, image_file, queue=False, api_visibility="private")

        # -- the run --------------------------------------------------------------------------------
        def restore(mode, image, image_file, mask_file, clean_file, model, task, scale, fraction, box_size,
                    kernel, kernel_size, kernel_sigma, sigma_y, preset, iterations, lr, seeds, degrade_seed,
                    resize, request: gr.Request = None, progress=gr.Progress(track_tqdm=True)):
            """Restore the page's image; returns status, result, gallery, metrics, command, downloads."""
            hidden = gr.DownloadButton(visible=False)
            try:
                work = page.workdir()
                req = _page_request(work, mode, image, image_file, mask_file, clean_file, task, scale, fraction,
                                    box_size, kernel, kernel_size, kernel_sigma, sigma_y, preset, iterations, lr,
                                    seeds, degrade_seed, resize)
                stop_event = page.stop_event(request)
                with page._run_lock:
                    stop_event.clear()
                    progress(0, desc="preparing")
                    den = page.denoiser(model)
                    out = session.restore_page(req, den, work, model_name=model, device=page.device,
                                               stop=stop_event)
                return (_status(out), str(out.files[session.RESTORED_PNG]),
                        [(_display(t), caption) for t, caption in out.gallery], _metrics(out), out.command,
                        *[gr.DownloadButton(value=str(out.files[name]), visible=True)
                          for name in (session.RESTORED_PNG, session.GRID_PNG, session.SPEC_JSON,
                                       session.MEASUREMENT_NPY)])
            except Stopped as exc:
                return (f"**Stopped:** {exc}.", None, [], "", "", hidden, hidden, hidden, hidden)
            except ShredError as exc:
                raise gr.Error(_message(exc, _file(image_file), _file(mask_file), _file(clean_file)),
                               print_exception=False) from None
            except gr.Error:
                raise
            except Exception as exc:  # a bug: one line in the page, the traceback in the terminal
                raise _internal(exc) from None
            finally:
                page.forget_stop(request)

        run.click(restore, [mode, editor, image_file, mask_file, clean_file, model_box, task, scale, fraction,
                            box_size, kernel, kernel_size, kernel_sigma, sigma_y, preset, iterations, lr, seeds,
                            degrade_seed, resize],
                  [status, result, gallery, metrics, command, dl_restored, dl_grid, dl_spec, dl_measurement],
                  api_name="restore", concurrency_limit=1, concurrency_id="network",
                  show_progress_on=[status, result])

        def press_stop(request: gr.Request = None):
            page.stop_event(request).set()
            return "**Stopping** at the next network evaluation..."

        stop.click(press_stop, None, status, queue=False, api_name="stop")

        demo.load(describe, [model_box, *request_inputs], info, api_visibility="private")
    return demo


def _status(out: session.Outcome) -> str:
    from ..restoration import plural

    s = out.summary
    iters = max(r["iterations"] for r in out.rows)
    msg = (f"**Done** in {s['wall_time_s']:.1f} s: {plural(len(out.rows), 'seed')}, {plural(iters, 'iteration')}, relative "
           f"measurement error {s['mean_rel_error']:.3g}")
    if "mean_psnr" in s:
        msg += f", PSNR {s['mean_psnr']:.2f} dB, SSIM {s['mean_ssim']:.3f}"
    if "diversity_rmse" in s:
        msg += f", diversity {s['diversity_rmse']:.4f}"
    return msg + "."


def _metrics(out: session.Outcome) -> str:
    """Per-seed table (Markdown), with the mean image's PSNR/SSIM for several seeds."""
    has_psnr = any(r.get("psnr") is not None for r in out.rows)
    head = "| seed | iterations | rel. error |" + (" PSNR dB | SSIM |" if has_psnr else "")
    rule = "| --- | --- | --- |" + (" --- | --- |" if has_psnr else "")
    lines = [head, rule]
    for r in out.rows:
        line = f"| {r['seed']} | {r['iterations']} | {r['rel_error']:.4f} |"
        if has_psnr:
            line += f" {r['psnr']:.2f} | {r['ssim']:.4f} |"
        lines.append(line)
    s = out.summary
    if "mean_image_psnr" in s:
        lines.append(f"| mean image | | | {s['mean_image_psnr']:.2f} | {s['mean_image_ssim']:.4f} |")
    if "max_std" in s:
        lines.append(f"\nUncertainty map: per-pixel std over the seeds, white = {s['max_std']:.4f}.")
    return "\n".join(lines)


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, *, block: bool = True,
           quiet: bool = False):
    """Serve the page (queued, one restoration at a time). ``block=False`` returns at once (tests)."""
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet,
                       show_error=False, ssr_mode=False, mcp_server=False, css=CSS, inbrowser=False,
                       allowed_paths=[str(SAMPLE.parent)], footer_links=["api"], run_history=False)
