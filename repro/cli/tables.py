"""`repro table3` ... `repro table6` (one command per spec in studies/), `repro all`, `repro tune`.

Each table is an Optuna study of its rows x seeds (repro.studies); a finished config is reused
across tables, a killed study resumes where it stopped. Tables run together (`repro all`,
`repro table4a table4b`) are one pool of trainings over the workers (spread over --devices), and
each prints as soon as its cells and those of the tables it reads are done: beside the paper's
numbers, with every row's difference from the Baseline and its interval, what its seeds can
resolve, and the paper's claims on it (repro.report.claims). Exit status 0 when every cell finished
or diverged (a result: the row reports its other seeds), 1 when any other cell is left.
"""

import sys

from repro.cli.train import config_args, config_from_args


def _study_args(parser) -> None:
    config_args(parser)
    parser.add_argument("--workers", type=int, help="worker processes on this machine (default: one per device on GPUs, else 1)")
    parser.add_argument(
        "--devices",
        help="comma-separated devices the workers are spread over, round-robin (e.g. cuda:0,cuda:1; "
        "default: every visible GPU, else cpu); each worker process sees only its own GPU",
    )
    parser.add_argument(
        "--storage",
        help="Optuna storage URL shared by workers on several machines (e.g. postgresql://user@host/db; "
        "with REPRO_TRACKING_URI=http://mlflow-server); default: a journal file under mlruns/optuna/",
    )


def devices_from_args(args) -> list[str] | None:
    """--devices as a list (None: the default, runner.check_devices)."""
    return None if args.devices is None else [d.strip() for d in args.devices.split(",") if d.strip()]


def targets_from_args(args) -> list[str] | None:
    """--targets as the list that remaps the spec's columns, in order (None: the spec's own)."""
    return [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None


def register(sub) -> None:
    from repro.studies.spec import load_table, spec_names

    names = spec_names()
    for name in names:
        table = sub.add_parser(name, help=f"{load_table(name).title}, as a study (studies/{name}.toml)")
        _study_args(table)
        table.add_argument("--seeds", type=int, help="seeds per cell (default: the spec's)")
        table.add_argument(
            "more", nargs="*", metavar="TABLE", help=f"more tables run with it as one pool of trainings (of {', '.join(names)})"
        )
        table.set_defaults(func=_tables, tables=[name])
    every = sub.add_parser(
        "all",
        help=f"every study ({', '.join(names)}) as one pool of trainings; each distinct config trains once per seed, "
        "and each table prints when its cells are done",
    )
    _study_args(every)
    every.add_argument("--seeds", type=int, help="seeds per cell (default: each spec's)")
    every.set_defaults(func=_tables, tables=names, more=[])

    tune = sub.add_parser("tune", help="choose r, lambda1, lambda2 and lambda3 by k-fold cross-validation on the source (never a target)")
    _study_args(tune)
    tune.add_argument("--folds", type=int, default=10, help="k of k-fold; folds hold whole pose groups (default 10, the paper's)")
    tune.add_argument("--trials", type=int, help="grid points to evaluate, drawn with a fixed seed (default: all)")
    tune.add_argument(
        "--params",
        default="ratio,lambda_heat,lambda_pose,lambda_con",
        help="comma-separated parameters to choose, from ratio (r), lambda_heat (lambda1), lambda_pose (lambda2), "
        "lambda_con (lambda3) (default: all four, as the paper; 144 grid points x k folds: "
        "ratio,lambda_con searches the 16 points of the two the paper ablates)",
    )
    tune.set_defaults(func=_tune)


def _tables(args) -> int:
    from repro.report.claims import (
        DELTA_HEADER,
        Scores,
        baseline_runs,
        load_claims,
        runs_by_config,
        statistics_text,
        table_statistics,
        with_deltas,
    )
    from repro.report.tables import earlier_studies
    from repro.studies.results import format_results, log_results, results_frame
    from repro.studies.table import run_tables

    base = config_from_args(args)  # the config and the claims are checked before the store is opened
    claims = load_claims()
    scores = Scores()
    targets = targets_from_args(args)

    def report(plan, session, settled) -> None:
        studies = [s.study for s in settled]
        index = runs_by_config(studies)  # Tables 3, 5, 6 read Table 4(a)'s Baseline
        if not any(baseline_runs(plan, index)[0].values()):  # Table 4(a) may have run in an earlier command
            index = runs_by_config(studies + earlier_studies(base, [s.plan.spec.name for s in settled], targets, args.storage))
        frame = results_frame(plan, session.study)
        stats = table_statistics(plan, frame, index, claims, scores)
        frame = with_deltas(frame, stats)
        text = format_results(plan, frame, (DELTA_HEADER,)) + "\n" + statistics_text(stats)
        log_results(session, frame, text)
        print(text + "\n", flush=True)  # while the other tables train

    results = run_tables(
        args.tables + args.more,
        base,
        args.seeds,
        targets,
        args.workers,
        args.storage,
        devices=devices_from_args(args),
        on_done=report,
    )
    return _unfinished([session for _, session in results])


def _tune(args) -> int:
    from repro.studies.runner import run_study
    from repro.studies.tune import TunePlan, format_tune, tune_frame

    params = tuple(p.strip() for p in args.params.split(",") if p.strip())
    plan = TunePlan(config_from_args(args), args.folds, params, args.trials)
    session = run_study(plan, args.workers, args.storage, devices=devices_from_args(args))
    print(format_tune(plan, tune_frame(plan, session.study)))
    return _unfinished([session])


def _unfinished(sessions) -> int:
    """0 when every cell finished or diverged, else 1; either way each cell left is named on stderr
    with why, so that a long run's outcome is explained at its end rather than somewhere in its log.
    A diverged training is a result, not a failure to run: its row reports the other seeds ("n=2 of
    3, 1 diverged"); on the CPU a rerun draws the same numbers and diverges again (on a GPU not bit for
    bit, and retrying until one passes would report the survivors only)."""
    from repro.studies.runner import unfinished_cells

    cells = [(s.study.study_name, key, why) for s in sessions for key, why in unfinished_cells(s).items()]
    diverged = [f"  {study}: {key}" for study, key, why in cells if why == "diverged"]
    left = [f"  {study}: {key} ({why})" for study, key, why in cells if why != "diverged"]
    if diverged:
        print(
            f"repro: warning: {len(diverged)} training(s) diverged; the tables report their rows' other seeds, "
            "and a diverged training is not retried in this invocation (on the CPU a rerun diverges the same way):",
            *diverged,
            sep="\n",
            file=sys.stderr,
        )
    if left:
        print(
            f"repro: error: {len(left)} cell(s) did not finish; the tables above are partial, and the same command trains them again:",
            *left,
            sep="\n",
            file=sys.stderr,
        )
    return 1 if left else 0
