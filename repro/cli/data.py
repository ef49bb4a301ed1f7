"""`repro data build|show|info|export`: render the synthetic world to disk, look at it, inspect any dataset, write a
synthetic split in a real dataset's layout."""

import sys
from pathlib import Path

from repro.cli.output import print_record


def register(sub) -> None:
    data = sub.add_parser("data", help="build, show and inspect datasets")
    cmds = data.add_subparsers(dest="data_command", required=True)

    build = cmds.add_parser("build", help="render a synthetic domain to the on-disk cache")
    build.add_argument("--domain", required=True, help="synthetic domain, e.g. synth-frei")
    build.add_argument("--split", default=None, help="split to build (default: every split of the domain)")
    build.add_argument("--n", type=int, default=None, help="number of samples (default: the domain's size)")
    build.add_argument("--size", type=int, default=None, help="image side in pixels (default: the domain's)")
    build.add_argument("--workers", type=int, default=None, help="render processes (default: $REPRO_RENDER_WORKERS or one per core)")
    build.set_defaults(func=_build)

    show = cmds.add_parser("show", help="write a PNG grid of samples with their 2D joints drawn on top")
    show.add_argument("--domain", "--dataset", dest="dataset", required=True)
    show.add_argument("--root", default=None, help="dataset root (real datasets only)")
    show.add_argument("--split", default=None)
    show.add_argument("--count", type=int, default=16, help="number of samples in the grid")
    show.add_argument("--out", required=True, type=Path, help="PNG file to write")
    show.set_defaults(func=_show)

    info = cmds.add_parser("info", help="print a dataset's size and first sample")
    info.add_argument("--dataset", required=True)
    info.add_argument("--root", default=None)
    info.add_argument("--split", default=None)
    info.add_argument("--n", type=int, default=None, help="open only the first N samples")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_info)

    export = cmds.add_parser(
        "export", help="write a synthetic split in a real dataset's on-disk layout (FreiHAND, RHD, STB), as its loader reads it"
    )
    export.add_argument("--domain", required=True, help="labelled synthetic domain, e.g. synth-frei")
    export.add_argument("--format", dest="fmt", required=True, choices=("freihand", "rhd", "stb"), help="the real dataset's layout")
    export.add_argument("--out", required=True, type=Path, help="the dataset root to write (e.g. DIR, then --data-root's DIR/freihand)")
    export.add_argument("--n", type=int, default=None, help="number of synthetic samples (default: the whole split)")
    export.add_argument(
        "--split", default=None, help="synthetic split (default: the domain's first); written as the format's split of that role"
    )
    export.set_defaults(func=_export)


def _build(args) -> int:
    from repro.data.cache import build_domain
    from repro.data.domains import get_domain

    domain = get_domain(args.domain)
    splits = [args.split] if args.split else list(domain.splits)
    for split in splits:
        path = build_domain(domain.name, split, n=args.n, size=args.size, workers=args.workers)
        print(path)
    return 0


def _root(args):
    """--root for a real dataset; a synthetic one renders into its cache, never into a folder given here."""
    from repro.data.errors import DataError
    from repro.data.registry import is_synthetic

    if args.root is not None and is_synthetic(args.dataset):
        raise DataError(
            f"dataset {args.dataset!r} is synthetic (rendered into the cache, $REPRO_CACHE): --root is for the real datasets only; drop it"
        )
    return args.root


def _show(args) -> int:
    from repro.data.registry import open_dataset
    from repro.data.show import write_grid

    dataset = open_dataset(args.dataset, root=_root(args), split=args.split, n=args.count)
    write_grid(dataset, args.out, count=args.count)
    print(args.out)
    return 0


def _info(args) -> int:
    from repro.data.registry import open_dataset

    dataset = open_dataset(args.dataset, root=_root(args), split=args.split, n=args.n)
    first = dataset[0]
    record = {
        "dataset": args.dataset,
        "split": args.split,
        "n": len(dataset),
        "first": [[round(float(v), 4) for v in joint] for joint in first.xyz.tolist()],
        "image_shape": list(first.image.shape),
        "caption": first.caption,
    }
    print_record(record, args.json)
    return 0


def _export(args) -> int:
    from repro.data.export import export

    split = export(args.domain, args.fmt, args.out, n=args.n, split=args.split)
    print(f"{args.fmt} {split} split written under {args.out}", file=sys.stderr)
    print(args.out)
    return 0
