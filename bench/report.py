"""The results as markdown: machine, method, one table per config, a summary, and the targets."""

from __future__ import annotations

# (config, what, threshold): "vs_pytorch" is xpnet(best)/PyTorch, "roof_fraction" xpnet's share of
# the GEMM roof, "naive_slowdown" naive/xpnet time per sample.
TARGETS = [
    ("A", "vs_pytorch", 3.0),
    ("B", "vs_pytorch", 1.8),
    ("C", "vs_pytorch", 1.1),
    ("D", "vs_pytorch", 1.0),
    ("R", "vs_pytorch", 1.2),
    ("R", "vs_pytorch", 1.5),  # R: 1.2x required, 1.5x the goal
] + [(k, "naive_slowdown", 10.0) for k in "ABCD"]
RSS_TARGET_MB = 150.0
MIB = 2**20 / 1e6
NOISY_CORES = 0.25  # other processes' average CPU use (in cores) above which a run counts as noisy


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def header(everything: dict) -> list[str]:
    m = everything["machine"]
    v = m["versions"]
    roof = everything["gemm_roof"]
    per_config = "; ".join(
        f"before {key}: " + ", ".join(f"{lib} {g:.1f}" for lib, g in libs.items())
        for key, libs in roof["per_config"].items()
    )
    mem = f"{m['memory_gib']:.1f} GiB" if m["memory_gib"] else "unknown"
    lines = [
        "# xpnet CPU benchmark",
        "",
        f"- date: {m['date']}; mode: **{everything['mode']}**; {everything['repeats']} timed runs per implementation",
        f"- machine: {m['cpu']}, {m['cores']} cores, {mem} memory ({m['platform']}); "
        f"other processes kept {m['other_cores_at_start']:.2f} cores busy at the start, "
        f"{m['other_cores_at_end']:.2f} at the end (1-second samples)",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- numpy BLAS: {m['numpy_blas']}",
        "- torch BLAS: " + ("; ".join(m["torch_blas"]) or "n/a"),
        f"- float32 GEMM roof ({roof['n']}x{roof['n']} matmul, best of 3, measured just before each "
        f"config; a config's roof is the faster library's): {per_config} GFLOP/s",
        "",
        "Method: every implementation trains the same network from the same initial parameters on the same "
        "MNIST training images (bundled copy, pixels / 255) in the same batch order, in float32 with softmax + "
        "cross-entropy: plain SGD in A to D; in R the best-cpu recipe (Nesterov momentum, dropout on the hidden "
        "layers, affine augmentation), PyTorch doing the same with torch.optim.SGD(nesterov=True), nn.Dropout "
        "and F.affine_grid + F.grid_sample, drawing its own random numbers (so R's losses agree only roughly). "
        "xpnet runs through `training.Run`, the code path of `xpnet train`. "
        "One warm-up run per implementation, then timed runs alternating between "
        f"implementations (A B C A B C ...), with a {everything['gap_s']}s pause before each; each run is a "
        "fixed number of steps, the loss read back once at its end. samples/s = images per run / seconds: "
        "median and min-max over the timed runs. A timed run during which other processes kept more than "
        f"{NOISY_CORES} cores busy (from /proc/stat) is discarded and run again once they stop (waiting "
        f"at most {everything['idle_wait_s']:.0f}s), at most {everything['retries']} time(s). "
        "The naive order-3 NumPy reference is a reference line, not a "
        "competitor: fewer steps (same batch), a one-step warm-up on 16 images, and one timed run. "
        "`first-run loss` is the mean loss of an implementation's first run from the initial parameters "
        "(the same images for all but the naive one, which sees only its first steps): a check that all "
        "implementations do the same math. GFLOP/s counts matrix-multiply FLOPs only (forward and dW "
        "2·B·in·out per layer, dA 2·B·in·out for all layers but the first). `GEMMs alone` times the step's "
        "matrix multiplies with the backend's own matmul at the same shapes and layouts (jitted together on "
        "JAX; fastest of the repeats); `outside GEMMs` is the median step time minus that. The GEMM roof is "
        "the fastest of NumPy's BLAS, PyTorch's and XLA's (JAX) square matmul.",
        "",
    ]
    return lines


def config_section(res: dict) -> list[str]:
    s = res["summary"]
    lines = [
        f"## {res['config']}: {res['description']}",
        "",
        f"Each run: {res['steps']} steps x batch {res['batch']} = {res['samples_per_run']:,} images "
        f"(the first {res['samples_per_run']:,} of the 60,000 training images); naive reference: "
        f"{res['naive_steps']} step{'s' if res['naive_steps'] != 1 else ''} x {res['batch']}. "
        f"{res['flops_per_step'] / 1e6:,.1f} MFLOP per step. "
        f"GEMM roof measured just before: {s['roof_gflops']:.1f} GFLOP/s.",
        "",
    ]
    torch_rate = res["impls"].get("PyTorch eager", {}).get("median_samples_per_s")
    rows = []
    for name, st in res["impls"].items():
        rel = f"{st['median_samples_per_s'] / torch_rate:.2f}x" if torch_rate else "-"
        rows.append(
            [
                name,
                _rate(st["median_samples_per_s"]),
                f"{_rate(st['min_samples_per_s'])} - {_rate(st['max_samples_per_s'])}"
                if len(st["seconds"]) > 1
                else "(one run)",
                rel,
                f"{st['step_s'] * 1e6:,.0f}",
                f"{st['first_loss']:.4f}",
            ]
        )
    for name, why in res["skipped"].items():
        rows.append([name, "skipped", why, "", "", ""])
    lines += _table(
        ["implementation", "samples/s (median)", "min - max", "vs PyTorch", "us/step", "first-run loss"], rows
    )
    lines.append("")
    gemm_rows = [
        [
            name,
            f"{st['step_s'] * 1e6:,.0f}",
            f"{st['gemm_step_s'] * 1e6:,.0f}",
            f"{st['non_gemm_step_s'] * 1e6:,.0f} ({100 * st['non_gemm_step_s'] / st['step_s']:.0f}%)",
            f"{res['flops_per_step'] / st['step_s'] / 1e9:.1f}",
        ]
        for name, st in res["impls"].items()
        if "gemm_step_s" in st
    ]
    lines += _table(["xpnet backend", "us/step", "GEMMs alone us/step", "outside GEMMs us/step", "GFLOP/s"], gemm_rows)
    noise = res["max_other_cores"]
    lines += [
        "",
        f"Best xpnet backend: **{s['xpnet_best']}**. Other processes kept at most {noise:.2f} cores "
        f"busy during a timed run{' (**noisy**: rerun on an idle machine)' if noise > NOISY_CORES else ''}.",
        "",
    ]
    return lines


def _ratio(x) -> str:
    return f"{x:.2f}x" if x is not None else "-"


def summary_section(results: list[dict]) -> list[str]:
    rows = []
    for res in results:
        s = res["summary"]
        non_gemm = s.get("non_gemm_step_s")
        rows.append(
            [
                res["config"],
                s["xpnet_best"],
                _rate(s["xpnet_samples_per_s"]),
                _ratio(s.get("vs_pytorch")),
                f"{_ratio(s.get('vs_best_ref'))} ({s['best_ref']})",
                f"{s['gflops']:.1f} ({100 * s['roof_fraction']:.0f}%)",
                f"{non_gemm * 1e6:,.0f} / {s['step_s'] * 1e6:,.0f}" if non_gemm is not None else "-",
                _ratio(_ceiling(s)),
                _ratio(s.get("naive_slowdown")),
            ]
        )
    header = [
        "config",
        "xpnet best",
        "samples/s",
        "xpnet/PyTorch",
        "xpnet/best ref",
        "GFLOP/s (% roof)",
        "outside GEMMs / step (us)",
        "ceiling xpnet/PyTorch",
        "naive slowdown",
    ]
    return (
        ["## Summary", ""]
        + _table(header, rows)
        + [
            "",
            "`ceiling xpnet/PyTorch`: the ratio xpnet would reach if its step took only the time of its "
            "matrix multiplies alone (`GEMMs alone`, the same FLOPs at the backend's matmul speed): no "
            "work outside the GEMMs can push the ratio past it.",
            "",
        ]
    )


def _ceiling(s: dict):
    """xpnet/PyTorch if the best backend's step were its GEMMs alone."""
    non_gemm, ratio = s.get("non_gemm_step_s"), s.get("vs_pytorch")
    if non_gemm is None or ratio is None or s["step_s"] <= non_gemm:
        return None
    return ratio * s["step_s"] / (s["step_s"] - non_gemm)


SHARING_TARGET = 2.5  # an xpnet training beside another (or a busy core) at most this much slower


def target_rows(results: list[dict], rss: dict | None, sharing: dict | None = None) -> list[list[str]]:
    by_key = {r["config"]: r["summary"] for r in results}
    names = {
        "vs_pytorch": "xpnet >= {t}x PyTorch",
        "roof_fraction": "xpnet >= {p}% of GEMM roof",
        "naive_slowdown": "naive >= {t}x slower than xpnet",
    }
    rows = []
    for key, what, threshold in TARGETS:
        if key not in by_key:
            continue
        value = by_key[key].get(what)
        label = f"{key}: " + names[what].format(t=threshold, p=round(threshold * 100))
        shown = "-" if value is None else (f"{100 * value:.1f}%" if what == "roof_fraction" else f"{value:.3f}x")
        rows.append([label, shown, "-" if value is None else ("yes" if value >= threshold else "**no**")])
    if rss is not None:
        mb = rss["peak_rss_mb"]
        rows.append(
            [
                f"peak RSS of `{rss['command'].strip()}` <= {RSS_TARGET_MB:.0f} MB",
                f"{mb:.1f} MB ({mb / MIB:.1f} MiB)",
                "yes" if mb <= RSS_TARGET_MB else "**no**",
            ]
        )
    for name, r in (sharing or {}).items():
        if name.startswith("xpnet"):
            for what, label in (("pair_ratio", "two at once"), ("neighbour_ratio", "beside a busy core")):
                rows.append(
                    [
                        f"A, {name}: {label} <= {SHARING_TARGET}x alone",
                        f"{r[what]:.2f}x",
                        "yes" if r[what] <= SHARING_TARGET else "**no**",
                    ]
                )
    return rows


def targets_section(results: list[dict], rss: dict | None, sharing: dict | None = None) -> list[str]:
    lines = ["## Targets", ""] + _table(["target", "measured", "met"], target_rows(results, rss, sharing)) + [""]
    if rss is not None:
        lines.append(
            f"Peak RSS measured with {rss['method']} (MB = 10^6 bytes); the run took "
            f"{rss['seconds']:.0f}s and ended with: `{rss['last_line']}`"
        )
        lines.append("")
    return lines


def render(everything: dict) -> str:
    results = everything["configs"]
    lines = header(everything)
    lines += summary_section(results)
    lines += targets_section(results, everything["peak_rss"], everything.get("sharing"))
    for res in results:
        lines += config_section(res)
    if everything.get("sharing"):
        import sharing

        lines += sharing.render(everything["sharing"])
    lines.append(f"Total benchmark time: {everything['seconds']:.0f}s.")
    return "\n".join(lines) + "\n"
