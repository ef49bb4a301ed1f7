"""`repro model summary`: the network of a preset layer by layer, in the supplement's numbering (Tables 1-2)."""

from repro.cli.output import print_record


def register(sub) -> None:
    model = sub.add_parser("model", help="inspect the hand pose network")
    cmds = model.add_subparsers(dest="model_command", required=True)
    summary = cmds.add_parser(
        "summary",
        help="every layer of f_H2D (Table 1, Branch2 included) and f_PP (Table 2): "
        "operation, kernel, stride, output shape, parameters; then the parameter totals",
    )
    summary.add_argument("--preset", default="small", help="tiny | small | paper (default: small)")
    summary.add_argument("--json", action="store_true", help="print one JSON object per layer, then one with the totals")
    summary.set_defaults(func=_summary)


def _summary(args) -> int:
    from repro.model.summary import TABLES, build_model, parameter_totals, summary_rows
    from repro.presets import preset_config

    cfg = preset_config(args.preset).model
    model = build_model(cfg)
    rows, totals = summary_rows(model), parameter_totals(model)
    if args.json:
        for r in rows:
            print_record(
                {
                    "table": r.table,
                    "layer": r.number,
                    "operation": r.operation,
                    "kernel": r.kernel,
                    "stride": r.stride,
                    "shape": list(r.shape),
                    "dims": r.dims,
                    "params": r.params,
                },
                as_json=True,
            )
        print_record({"preset": args.preset, "totals": totals}, as_json=True)
        return 0
    prior = cfg.width if cfg.prior_width is None else cfg.prior_width
    print(
        f"preset {args.preset}: {cfg.input_size} px input, width {cfg.width} (f_PP {prior}), f_CLIP {cfg.clip_dim}; "
        f"Branch2 (L12-L19, training only) shown whatever the run's mode"
    )
    widths = [max(len(r.operation) for r in rows), max(len(r.dims) for r in rows)]
    line = "{:<5} {:<%d} {:<6} {:<6} {:<%d} {:>10}" % tuple(widths)
    for table, title in TABLES.items():
        print(f"\n{table} ({title})")
        print(line.format("layer", "operation", "kernel", "stride", "output", "params"))
        for r in (r for r in rows if r.table == table):
            params = f"{r.params:,}" if r.params else "-"
            print(line.format(r.label, r.operation, r.kernel or "-", r.stride or "-", r.dims, params))
    print("\nparameters")
    labels = {
        "f_H2D": "f_H2D (Table 1, Branch2 included)",
        "Branch2": "  of which Branch2 (L12-L19 + ProjectionHead)",
        "f_PP": "f_PP (Table 2)",
        "all": "all",
        "test": "at test time (all but Branch2)",
    }
    for key, label in labels.items():
        print(f"  {label:<46} {totals[key]:>12,}")
    return 0
