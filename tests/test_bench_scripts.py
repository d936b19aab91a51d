"""The report scripts of bench/: targets read from a results.json, tables copied into a page."""
import importlib.util
import json
import math

import pytest
import torch

from conftest import ROOT


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(psnr, kid, calls=195, n=10, err=0.0):
    return {"psnr": psnr, "kid": kid, "calls_per_image": calls, "n": n, "n_planned": n, "measurement_error": err}


def test_plus_targets_compare_with_peers_only_and_say_who_is_missing():
    targets = _module("plus_targets")
    rows = {"shred@plus": _row(20.0, 0.010), "ddnm": _row(20.5, 0.020, 100), "dps": _row(18.0, 0.005, 100),
            "shred@bundled": _row(19.0, 0.001, 1000),  # SHRED's own presets are not peers
            "dip": {"n": 3, "n_planned": 10, "psnr": 21.0},  # still running: missing, not compared
            "repaint": {"skipped": "mask tasks only"}}
    results = {"tasks": {"sr4": {"rows": rows, "operator": {"sigma_y": 0}},
                         "inpaint": {"rows": {**rows, "dps": _row(18.0, 0.030, 100)}, "operator": {}}}}
    out = targets.evaluate(results, {"device": "cpu", "rows": [
        {"method": "shred@plus", "batch": 1, "task": "sr4", "seconds_per_image": 9.0},
        {"method": "shred@plus", "batch": 8, "task": "sr4", "seconds_per_image": 5.0}]})
    sr4, inpaint = out["tasks"]["sr4"], out["tasks"]["inpaint"]
    assert sr4["kid_best_peer"] == "dps" and sr4["kid_wins"] is False
    assert inpaint["kid_best_peer"] == "ddnm" and inpaint["kid_wins"] is True
    assert sr4["missing_peers"] == ["dip"] and set(sr4["peers_with_kid"]) == {"ddnm", "dps"}
    assert sr4["psnr_within_1db_of_ddnm"] is True and sr4["residual_at_most_1pct"] is True
    t = out["targets"]
    assert (t["kid_wins"], t["kid_tasks_decided"], t["kid_lower_on_5_of_7"]) == (1, 2, None)
    assert t["calls_at_most_200"] is True and t["at_most_8s_per_image"] is False  # batch 1 only
    assert sr4["kid_images"] == 10 and "same_images" not in results["tasks"]["sr4"]


def test_plus_targets_compare_kid_on_the_same_images_when_the_report_has_them():
    targets = _module("plus_targets")
    rows = {"shred@plus": _row(20.0, 0.050, n=100), "repaint": _row(19.0, 0.010, 460, n=20),
            "ddnm": _row(20.5, 0.060, 100, n=100)}
    same = {"n": 20, "rows": {"shred@plus": {"kid": 0.004}, "repaint": {"kid": 0.008}, "ddnm": {"kid": 0.009}}}
    out = targets.evaluate({"tasks": {"inpaint": {"rows": rows, "same_images": same}}}, None)
    e = out["tasks"]["inpaint"]
    # Across image sets RePaint's 0.010 would beat SHRED+'s 0.050; on the same 20 images it does not.
    assert e["kid_wins"] is True and e["kid"] == 0.004 and e["kid_images"] == 20
    assert e["peers_with_kid"] == {"repaint": 0.008, "ddnm": 0.009} and e["kid_best_peer"] == "repaint"
    assert "| 4.00 (20) |" in targets.table(out)


def test_plus_targets_say_whether_a_kid_win_holds_on_larger_shared_sets():
    targets = _module("plus_targets")
    rows = {"shred@plus": _row(20.0, 0.050, n=100), "repaint": _row(19.0, 0.010, 460, n=25),
            "ddnm": _row(20.5, 0.060, 100, n=100), "dip": _row(21.0, 0.2, 0, n=20)}
    same = {"n": 20, "rows": {"shred@plus": {"kid": 0.004}, "repaint": {"kid": 0.008}, "ddnm": {"kid": 0.009},
                              "dip": {"kid": 0.2}}}
    larger = [{"n": 25, "rows": {"shred@plus": {"kid": 0.006}, "repaint": {"kid": 0.005}, "ddnm": {"kid": 0.03}}},
              {"n": 100, "rows": {"shred@plus": {"kid": 0.050}, "ddnm": {"kid": 0.060}}}]
    block = {"rows": rows, "same_images": same, "larger_shared_sets": larger}
    out = targets.evaluate({"tasks": {"inpaint": block, "sr4": {**block, "larger_shared_sets": larger[1:]},
                                      "cs5": {**block, "larger_shared_sets": []}}}, None)
    inpaint, sr4 = out["tasks"]["inpaint"], out["tasks"]["sr4"]
    # The verdict is the same-images table's (every peer there); the larger sets are reported beside it.
    assert inpaint["kid_wins"] is True and sr4["kid_wins"] is True and out["targets"]["kid_wins"] == 3
    first, second = inpaint["kid_on_larger_sets"]
    assert (first["n"], first["best_peer"], first["wins"], first["peers_absent"]) == (25, "repaint", False, ["dip"])
    assert (second["n"], second["best_peer"], second["wins"], second["peers_absent"]) == (
        100, "ddnm", True, ["dip", "repaint"])
    assert out["kid_wins_reversed_on_a_larger_set"] == ["inpaint"]
    assert out["kid_wins_holding_on_larger_sets"] == ["sr4"]    # cs5 has no larger set: in neither list
    assert "| 6.00 / 5.00 repaint (25); 50.00 / 60.00 ddnm (100) |" in targets.table(out)


def test_fill_results_tables_replaces_each_task_table_and_drops_rows_that_do_not_apply(tmp_path):
    fill = _module("fill_results_tables")
    report = tmp_path / "results.md"
    report.write_text("intro\n\n### SR x4 (n = 100)\n\n| method | PSNR |\n| --- | --- |\n| ddnm | 21.35 |\n"
                      "| selfdeblur | blind methods run on the blind task only | |\n| dip | 3 of 20 images done | |\n\n"
                      "### Blind deconv (n = 50)\n\n| method | PSNR |\n| --- | --- |\n| selfdeblur | 14.60 |\n"
                      "| ddnm | a non-blind method needs the kernel | |\n")
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n### SR x4 (n = 100)\n\n| method | PSNR |\n| --- | --- |\n| ddnm | 20.00 |\n\n"
                    "text after\n\n### Blind deblurring (9x9) (n = 50)\n\n| old |\n")
    assert fill.main([str(report), str(page)]) == 0
    assert page.read_text() == ("# Results\n\n### SR x4 (n = 100)\n\n| method | PSNR |\n| --- | --- |\n"
                                "| ddnm | 21.35 |\n| dip | 3 of 20 images done | |\n\ntext after\n\n"
                                "### Blind deblurring (9x9) (n = 50)\n\n| method | PSNR |\n| --- | --- |\n"
                                "| selfdeblur | 14.60 |\n")
    page.write_text("# Results\n\n### SR x4 (n = 100)\n\n| old |\n")  # the blind table has no heading here
    assert fill.main([str(report), str(page)]) == 1
    assert page.read_text() == "# Results\n\n### SR x4 (n = 100)\n\n| old |\n"  # left as it was



def test_fill_results_tables_carries_the_same_images_table_and_replaces_it_next_time(tmp_path):
    fill = _module("fill_results_tables")
    report, page = tmp_path / "results.md", tmp_path / "page.md"
    section = ("### SR x4 (n = 100)\n\n| method | PSNR |\n| --- | --- |\n| ddnm | 21.35 |\n\n"
               "The same 20 images for every method with 20 or more (...):\n\n| method | KID |\n| --- | --- |\n"
               "| ddnm | {} |\n\n")
    report.write_text(section.format("1.00"))
    page.write_text("# Results\n\n### SR x4 (n = 100)\n\n| old |\n\nprose\n")
    assert fill.main([str(report), str(page)]) == 0
    expected = "# Results\n\n" + section.format("{}").rstrip("\n") + "\n\nprose\n"
    assert page.read_text() == expected.format("1.00")
    report.write_text(section.format("2.00"))  # a later report: replaced, not appended
    assert fill.main([str(report), str(page)]) == 0
    assert page.read_text() == expected.format("2.00")


def test_fill_results_tables_carries_the_larger_sets_table_too(tmp_path):
    fill = _module("fill_results_tables")
    report, page = tmp_path / "results.md", tmp_path / "page.md"
    section = ("### SR x4 (n = 100)\n\n| method | PSNR |\n| --- | --- |\n| ddnm | 21.35 |\n\n"
               "The same 20 images for every method with 20 or more (...):\n\n| method | KID |\n| --- | --- |\n"
               "| ddnm | 1.00 |\n\nOn larger shared image sets (...):\n\n| method | n = 50 |\n| --- | --- |\n"
               "| ddnm | {} |\n\n")
    # The page has the first two tables only: the third is added, and replaced on the next run.
    page.write_text("# Results\n\n" + section.split("On larger")[0] + "prose\n")
    report.write_text(section.format("3.00"))
    assert fill.main([str(report), str(page)]) == 0
    expected = "# Results\n\n" + section.format("{}").rstrip("\n") + "\n\nprose\n"
    assert page.read_text() == expected.format("3.00")
    report.write_text(section.format("4.00"))
    assert fill.main([str(report), str(page)]) == 0
    assert page.read_text() == expected.format("4.00")


def test_seed_mean_refuses_bad_inputs_in_one_line_before_any_work(tmp_path, capsys):
    import pytest

    seed_mean = _module("seed_mean")
    out = str(tmp_path / "s.json")
    cases = [(["--n", "0"], "--n: expected a number of images >= 1, got 0"),
             (["--seeds", "1"], "a number of seeds >= 2 (a mean needs two), got 1"),
             (["--set", "dps.steps=10"], "--set takes shred@plus.NAME=VALUE or ddnm.NAME=VALUE, got dps.steps"),
             (["--set", "shred@plus.task=cs"], "--set shred@plus.task: this script sets the task itself"),
             (["--set", "shred@plus.lr=abc"], "SHRED lr must be a positive finite number, got 'abc'"),
             (["--tasks", "sr9"], "unknown task sr9; choose from inpaint"),
             (["--tasks", "blind"], "blind: a blind task, where DDNM (the reference) would need the blur"),
             (["--data", str(tmp_path / "none")], "no such file or folder")]
    for args, said in cases:
        with pytest.raises(SystemExit) as e:
            seed_mean.main([*args, "--out", out])
        err = capsys.readouterr().err
        assert e.value.code == 2 and said in err and "Traceback" not in err, (args, err)
    with pytest.raises(SystemExit):
        seed_mean.main(["--out", str(tmp_path)])  # a folder: refused before the model loads
    assert "unsupported output type; use one of .json" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_quantized_y_rounds_as_a_file_does_and_refuses_bad_inputs_before_any_work(tmp_path, capsys):
    import math

    import pytest
    import torch

    q = _module("quantized_y")
    y = torch.tensor([-0.1, 0.0, 0.5, 0.501, 1.0, 1.2])
    assert torch.equal(q.quantise(y) * 255, torch.tensor([0.0, 0.0, 128.0, 128.0, 255.0, 255.0]))
    # The rounding error of a uniform 8-bit grid: its standard deviation is the constant the script
    # declares, the library's (what `shred-ir restore` adds for an 8-bit file).
    fine = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    assert float((q.quantise(fine) - fine).std()) == pytest.approx(q.QUANTISATION_STD, rel=0.01)
    assert q.QUANTISATION_STD == pytest.approx(1 / 255 / math.sqrt(12))
    cases = [(["--n", "0"], "expected a number of images >= 1, got 0"),
             (["--tasks", "sr9"], "unknown task sr9; choose from deblur, sr4, inpaint, sr2, sr4-bicubic, sr8, cs5, colorize, blind"),
             (["--out", str(tmp_path / "q.txt")], "--out: a .json file"),
             (["--data", str(tmp_path / "none")], "no such file or folder")]
    for args, said in cases:
        with pytest.raises(SystemExit) as e:
            q.main(["--out", str(tmp_path / "q.json"), *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and said in err and "Traceback" not in err, (args, err)


def test_seed_mean_splits_the_error_into_bias_and_spread_and_sees_a_posterior_sampler():
    """Toy posterior: x ~ N(0, 1) per pixel, y = x + N(0, 1), so p(x | y) = N(y / 2, 1 / 2) and the
    MMSE is 1/2. Exact posterior samples: dispersion 1, a sample's MSE twice the MMSE (3.01 dB
    below); samples at half the posterior's spread: dispersion 1/4. The split is exact algebra."""
    seed_mean = _module("seed_mean")
    g = torch.Generator().manual_seed(0)
    k, n, d = 4, 50, 4000

    def stats(scale):
        mse_s, mse_m, spread = [], [], []
        for _ in range(n):
            x = torch.randn(d, generator=g, dtype=torch.float64)
            y = x + torch.randn(d, generator=g, dtype=torch.float64)
            s = y / 2 + scale * 0.5 ** 0.5 * torch.randn(k, d, generator=g, dtype=torch.float64)
            mse_s.append(float(((s - x) ** 2).mean()))
            mse_m.append(float(((s.mean(0) - x) ** 2).mean()))
            spread.append(float(s.var(0, correction=1).mean()))
        return seed_mean._spread_row(mse_s, mse_m, spread, k)

    exact = stats(1.0)
    m = exact["mean_mse"]
    assert m["sample"] == pytest.approx(m["sampler_mean"] + m["spread"], rel=1e-12)  # algebra, not sampling
    assert m["sampler_mean"] == pytest.approx(0.5, rel=0.02) and exact["dispersion"] == pytest.approx(1, rel=0.03)
    p = exact["psnr_of_mean_mse"]
    assert p["sampler_mean"] - p["sample"] == pytest.approx(10 * math.log10(2), abs=0.1)
    # The mean of K samples: (1 + 1/K) times the MMSE.
    assert m["seed_mean"] == pytest.approx(0.5 * (1 + 1 / k), rel=0.02)
    narrow = stats(0.5)
    assert narrow["dispersion"] == pytest.approx(0.25, rel=0.05)
    assert narrow["mean_mse"]["sampler_mean"] == pytest.approx(0.5, rel=0.02)


def test_seed_mean_reports_the_input_with_exact_images_apart():
    seed_mean = _module("seed_mean")
    x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    shown = x.clone()
    shown[1] = (shown[1] + 0.1).clamp(0, 1)
    row = seed_mean._input_row(shown, x)
    assert row["exact"] == 2 and math.isfinite(row["psnr"]) and row["psnr"] > 15
    mse = float(((shown[1] - x[1]) ** 2).mean()) / 3
    assert row["mean_mse"] == pytest.approx(mse) and row["psnr_of_mean_mse"] == pytest.approx(-10 * math.log10(mse))


def test_krylov_cost_times_both_convolutions_and_a_subspace(tmp_path, capsys):
    k = _module("krylov_cost")
    out = tmp_path / "cost.json"
    assert k.main(["--size", "16", "--kernels", "3,5", "--repeat", "1", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert [(r["kernel"], r["dtype"]) for r in got["convolutions"]] == \
        [(3, "float32"), (3, "float64"), (5, "float32"), (5, "float64")]
    assert all(r["direct_ms"] > 0 and r["fft_ms"] > 0 for r in got["convolutions"])
    assert got["subspace_kernel"] == 5 and got["subspace_s"] > 0
    with pytest.raises(SystemExit):
        k.main(["--kernels", "4", "--out", str(out)])       # an even side
    assert "odd sides" in capsys.readouterr().err


def test_plus_targets_take_a_task_from_a_later_run_of_the_same_test_only():
    targets = _module("plus_targets")
    cfg = {"data": "cifar10-test", "seed": 0, "model": "cifar10-32"}
    block = {"indices": [3, 1, 4], "operator": {"name": "blur", "kernel": [[1.0]]},
             "rows": {"shred-blind@plus": _row(19.0, 0.3, 200), "selfdeblur": _row(14.0, 0.09, 0),
                      "ddnm": {"skipped": "a non-blind method needs the kernel"}}}   # not a peer here
    first = {"config": cfg, "tasks": {"blind": block, "sr4": {"rows": {}}}}
    later = {"config": cfg, "tasks": {"blind": {**block, "rows": {**block["rows"],
                                                                  "shred-blind@plus": _row(21.0, 0.05, 315)}}}}
    merged = targets.replace_tasks(first, {"blind": later})
    assert merged["tasks"]["blind"]["rows"]["shred-blind@plus"]["psnr"] == 21.0 and "sr4" in merged["tasks"]
    assert first["tasks"]["blind"]["rows"]["shred-blind@plus"]["psnr"] == 19.0     # the input is not changed
    assert targets.evaluate(merged, None)["tasks"]["blind"]["kid_wins"] is True
    for other, what in ((dict(later, config={**cfg, "seed": 1}), "seed"),
                        (dict(later, tasks={"blind": {**later["tasks"]["blind"], "indices": [3, 1, 5]}}), "indices"),
                        (dict(later, tasks={"blind": {**later["tasks"]["blind"], "operator": {}}}), "operator"),
                        (dict(later, tasks={}), "not a task"),
                        (dict(later, config={**cfg, "reference_n": 100}), "reference_n"),
                        (dict(later, tasks={"blind": {**later["tasks"]["blind"], "rows": {
                            "shred-blind@plus": _row(21.0, 0.05, 315)}}}), "lacks the peers selfdeblur")):
        with pytest.raises(SystemExit, match=what):
            targets.replace_tasks(first, {"blind": other})
