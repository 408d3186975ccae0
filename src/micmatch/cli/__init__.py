"""The ``micmatch`` command.

Each command group lives in its own module of this package (``core``: profile/correct/export/plot/demo,
``measure``: sweep/measure/pair, ``features``, ``bench``, ``train``); this module only assembles them and turns
:class:`~micmatch.errors.MicmatchError` into one clear line on stderr and exit code 1 (traceback with
``--verbose``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

import click

from micmatch import __version__
from micmatch.errors import MicmatchError

#: Modules of this package that define commands; each exposes ``COMMANDS``, a list of click commands.
COMMAND_MODULES = ("core", "measure", "features", "bench", "train")


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MicmatchError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            click.echo(f"micmatch: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="micmatch")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Measure, match and simulate the frequency responses of recording devices.

    \b
    Typical use:
      micmatch profile recordings/ -o responses.json --device-from dir
      micmatch correct recordings/phone --responses responses.json --device phone --reference studio -o matched/
      micmatch demo -o demo-output
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


for _name in COMMAND_MODULES:
    _full = f"{__name__}.{_name}"
    if importlib.util.find_spec(_full) is not None:
        for _cmd in importlib.import_module(_full).COMMANDS:
            main.add_command(_cmd)


def run() -> None:  # pragma: no cover - thin wrapper for python -m
    sys.exit(main())
