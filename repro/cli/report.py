"""`repro report`: the table studies as paper-style tables (Markdown, HTML, LaTeX) with an index,
logged as a run of the MLflow experiment "repro-reports"; `repro fig3`, `repro fig4`, `repro curves`:
figures (PNG + numbers, each logged as a run of the MLflow experiment "repro-figures"); `repro ui`,
`repro dashboard`: the MLflow UI and optuna-dashboard on the suite's stores, on 127.0.0.1."""

import json
import sys
from pathlib import Path

from repro.cli.tables import targets_from_args
from repro.cli.train import config_args, config_from_args
from repro.tracking import TRAIN_EXPERIMENT

OUT_DEFAULT = Path("reports/figures")
REPORT_OUT = Path("reports")
UI_PORT = 5000  # `repro ui`'s: the report's run ids link there by default


def _clip_and_data(parser, ratio: float) -> None:
    parser.add_argument(
        "--clip", default="synthclip", help="CLIP spec: synthclip (default, offline), MODEL:TAG, or MODEL with --clip-checkpoint"
    )
    parser.add_argument("--clip-checkpoint", type=Path, help="local open_clip state dict for --clip")
    parser.add_argument("--ratio", type=float, default=ratio, help=f"r in r * f_CI(x) + (1 - r) * f_CT(t) (default {ratio})")
    parser.add_argument("--n", type=int, default=300, help="images per set (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompt draws (and of t-SNE)")
    parser.add_argument("--source", default="synth-frei", help="source dataset, its training split (default synth-frei)")
    parser.add_argument("--data-root", help="folder holding the real datasets (freihand/, stb/, rhd/)")
    parser.add_argument("--size", type=int, default=128, help="crop size the images are rendered/loaded at (default 128)")
    parser.add_argument("--out", type=Path, default=OUT_DEFAULT, help=f"output folder (default {OUT_DEFAULT})")


def register(sub) -> None:
    report = sub.add_parser(
        "report",
        help="every table study of a preset as a paper-style table (Markdown, HTML, LaTeX), "
        "with an index of the tables and figures; logged to MLflow",
    )
    config_args(report)  # the config flags of `repro table*`: the same ones find the same studies
    report.add_argument("--storage", help="Optuna storage URL the studies ran on (default: the journal files under mlruns/optuna/)")
    report.add_argument("--out", type=Path, default=REPORT_OUT, help=f"output folder (default {REPORT_OUT}; the index links its figures/)")
    report.add_argument(
        "--ui",
        help="MLflow UI address the report's run ids link to (default: $REPRO_TRACKING_URI when it is an http(s) server, "
        f"else `repro ui`'s http://127.0.0.1:{UI_PORT})",
    )
    report.set_defaults(func=_report)

    fig3 = sub.add_parser(
        "fig3",
        help="paper Fig. 3: t-SNE of CLIP-augmented source features vs source and targets, "
        "with coverage numbers (nearest-neighbour share, MMD^2)",
    )
    _clip_and_data(fig3, ratio=0.5)
    fig3.add_argument("--targets", default="synth-stb,synth-rhd", help="comma-separated target datasets, test splits")
    fig3.set_defaults(func=_fig3)

    fig4 = sub.add_parser(
        "fig4", help="paper Fig. 4: retrieval of source images by image+text queries, with precision@k of the prompt's style"
    )
    _clip_and_data(fig4, ratio=0.6)
    fig4.add_argument("--k", type=int, default=8, help="images retrieved per query (default 8)")
    fig4.add_argument("--queries", type=int, default=4, help="query rows drawn (default 4)")
    fig4.add_argument("--pairs", type=int, default=200, help="(query, prompt) pairs precision@k averages over (default 200)")
    fig4.set_defaults(func=_fig4)

    curves = sub.add_parser("curves", help="PCK curves and per-epoch training losses of tracked training runs")
    curves.add_argument("--experiment", default=TRAIN_EXPERIMENT, help=f"MLflow experiment of the runs (default {TRAIN_EXPERIMENT})")
    curves.add_argument("--run-ids", nargs="+", help="runs to plot (default: every finished run, filtered by --preset/--study)")
    curves.add_argument("--preset", help="only runs of this preset (tag preset)")
    curves.add_argument("--study", help="only runs of this study (tag study, or reused by it)")
    curves.add_argument("--out", type=Path, default=OUT_DEFAULT, help=f"output folder (default {OUT_DEFAULT})")
    curves.set_defaults(func=_curves)

    ui = sub.add_parser("ui", help="the MLflow UI on the suite's tracking store, on 127.0.0.1")
    ui.add_argument("--port", type=int, default=UI_PORT)
    ui.set_defaults(func=_ui)

    dashboard = sub.add_parser("dashboard", help="optuna-dashboard on a study's storage, on 127.0.0.1")
    which = dashboard.add_mutually_exclusive_group()
    which.add_argument("--table", help="study journal under mlruns/optuna/ (e.g. table4a, tune; default: the only one)")
    which.add_argument("--storage", help="Optuna storage URL (as given to `repro table* --storage`)")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.set_defaults(func=_dashboard)


def _data_options(args) -> dict:
    return {
        "clip": args.clip,
        "clip_checkpoint": args.clip_checkpoint,
        "n": args.n,
        "ratio": args.ratio,
        "seed": args.seed,
        "source": args.source,
        "data_root": args.data_root,
        "size": args.size,
        "out": args.out,
    }


def _finish(name: str, options: dict, numbers: dict, files: list) -> int:
    from repro.report.figures import log_figure_run

    run_id = log_figure_run(name, options, numbers, files)
    print(json.dumps({**numbers, "files": [str(f) for f in files], "mlflow_run_id": run_id}, indent=1))
    return 0


def _ui_address(given: str | None) -> str:
    """Where the MLflow UI of the suite's store answers: --ui, the tracking server, or `repro ui`'s address."""
    from repro.report.servers import HOST
    from repro.tracking import tracking_uri

    uri = given or tracking_uri()
    return uri.rstrip("/") if given or uri.startswith(("http://", "https://")) else f"http://{HOST}:{UI_PORT}"


def _report(args) -> int:
    from repro.report.tables import NoStudies, run_report
    from repro.tracking import REPORTS_EXPERIMENT, log_files_run

    base = config_from_args(args)
    try:
        files, absent = run_report(base, args.out, targets_from_args(args), args.storage, ui=_ui_address(args.ui))
    except NoStudies as err:
        print(f"repro: error: {err}; studies there: {', '.join(_existing_studies(args.storage)) or 'none'}", file=sys.stderr)
        return 1
    for study in absent:
        print(f"no study {study}: not reported")
    run_id = log_files_run(
        REPORTS_EXPERIMENT,
        f"report-{base.preset}",
        files,
        {"report": "tables", "preset": base.preset},
        {"out": str(args.out), "config_hash": base.hash, "not_reported": ",".join(absent)},
    )
    print("\n".join(["wrote:", *(f"  {f}" for f in files), f"mlflow run id: {run_id}"]))
    return 0


def _existing_studies(storage: str | None) -> list[str]:
    """Names of the studies on --storage URL, or in the journals under mlruns/optuna/ (for error messages)."""
    import optuna

    from repro.report.servers import journals
    from repro.studies.runner import open_storage

    names = []
    for journal in [""] if storage else journals():
        try:
            names += optuna.get_all_study_names(open_storage(storage, journal))
        except Exception:  # noqa: BLE001 (only an error message's detail: an unreadable store lists nothing)
            continue
    return sorted(set(names))


def _fig3(args) -> int:
    from repro.report.fig3_tsne import run_fig3

    options = {**_data_options(args), "targets": [t.strip() for t in args.targets.split(",") if t.strip()]}
    return _finish("fig3", options, *run_fig3(**options))


def _fig4(args) -> int:
    from repro.report.fig4_retrieval import run_fig4

    options = {**_data_options(args), "k": args.k, "queries": args.queries, "pairs": args.pairs}
    return _finish("fig4", options, *run_fig4(**options))


def _curves(args) -> int:
    from repro.report.curves import run_curves

    options = {"experiment_name": args.experiment, "run_ids": args.run_ids, "preset": args.preset, "study": args.study, "out": args.out}
    summary, files = run_curves(**options)
    # The chosen run ids go in curves_runs.csv, not a param: a study's list would pass MLflow's param length limit.
    return _finish("curves", {**options, "run_ids": len(args.run_ids or [])}, summary, files)


def _ui(args) -> int:
    from repro.report.servers import run_mlflow_ui

    run_mlflow_ui(args.port)
    return 0


def _dashboard(args) -> int:
    from repro.report.servers import run_dashboard

    run_dashboard(args.storage, args.table, args.port)
    return 0
