"""`repro train`, `repro eval RUN_ID`, `repro config show`: one configuration, from preset and overrides."""

import json


def config_args(parser) -> None:
    parser.add_argument("--preset", default="small", help="tiny | small | paper (default: small)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set mode=baseline --set model.width=0.5",
    )
    parser.add_argument("--source", help="training dataset (e.g. synth-frei, freihand)")
    parser.add_argument("--targets", help="comma-separated target datasets (e.g. stb,rhd)")
    parser.add_argument("--data-root", help="folder holding the real datasets (freihand/, stb/, rhd/)")
    parser.add_argument(
        "--clip",
        help="CLIP spec: synthclip[:RECIPE] (default: the preset's, synthclip:small; tiny uses synthclip:tiny), MODEL:TAG (e.g. ViT-B-32:openai), or an open_clip model name with --clip-checkpoint",
    )
    parser.add_argument("--clip-checkpoint", help="local open_clip state dict for --clip MODEL")


def config_from_args(args):
    from repro.config import parse_overrides
    from repro.presets import preset_config

    overrides = parse_overrides(args.overrides)
    for name in ("source", "targets", "data_root", "clip", "clip_checkpoint"):  # flags named as the fields
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return preset_config(args.preset, overrides)


def register(sub) -> None:
    train = sub.add_parser(
        "train", help="train one configuration (reuses a finished run of the same identity: config, data and CLIP weights)"
    )
    config_args(train)
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="evaluate a finished run's checkpoint on its targets (or --target)")
    ev.add_argument("run_id")
    ev.add_argument("--target", action="append", help="dataset to evaluate on (repeatable; default: the run's targets)")
    ev.set_defaults(func=_eval)

    config = sub.add_parser("config", help="inspect configurations")
    cmds = config.add_subparsers(dest="config_command", required=True)
    show = cmds.add_parser("show", help="print a preset's full config (with overrides) and its hash")
    config_args(show)
    show.set_defaults(func=_show)


def _train(args) -> int:
    from repro.train.run import train_run

    result = train_run(config_from_args(args))
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "run_hash": result.run_hash,
                "config_hash": result.config_hash,
                "status": result.status,
                "reused": result.reused,
                "metrics": result.metrics,
            },
            indent=1,
        )
    )
    return 0 if result.status == "FINISHED" else 1


def _eval(args) -> int:
    from repro.train.finished import evaluate_run

    print(json.dumps(evaluate_run(args.run_id, args.target), indent=1))
    return 0


def _show(args) -> int:
    cfg = config_from_args(args)
    print(json.dumps({"config_hash": cfg.hash, **cfg.to_dict()}, indent=1))
    return 0
