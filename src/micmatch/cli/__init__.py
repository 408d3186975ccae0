"""The ``micmatch`` command.

Each command group lives in its own module of this package (``core``: profile/correct/export/plot/demo,
``measure``: sweep/measure/pair, ``match``, ``event``, ``features``, ``bench``, ``train`` and ``converter``: train
converter); what they share is in ``common`` (options, error lines, output plans) and ``batch`` (the batch runner).
This module registers every command, from one explicit list, and turns :class:`~micmatch.errors.MicmatchError`
into one clear line on stderr and exit code 1 (traceback with ``--verbose``). Command modules import torch,
matplotlib and dask only inside the commands that use them, so ``import micmatch.cli`` stays light.
"""

from __future__ import annotations

import traceback

import click

from micmatch import __version__
from micmatch.cli import bench, converter, core, event, features, match, measure, train
from micmatch.errors import MicmatchError
from micmatch.outputs import (
    Terminated,
    handle_termination,
    remove_live_staging,
    restore_termination,
)

#: Every top-level command, in one place (``micmatch --help`` lists them by name).
COMMANDS = [*core.COMMANDS, *measure.COMMANDS, *match.COMMANDS, *event.COMMANDS, *features.COMMANDS,
            *bench.COMMANDS, *train.COMMANDS]

#: Commands of the groups above that are defined in other modules: group -> its added commands.
SUBCOMMANDS = {train.train: [converter.converter]}


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        previous = handle_termination()  # SIGTERM, like SIGINT, unwinds: partial outputs are removed on the way out
        try:
            return super().invoke(ctx)
        except MicmatchError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            click.echo(f"micmatch: error: {exc}", err=True)
            ctx.exit(1)
        except OSError as exc:  # an OS refusal outside any per-file loop: one line naming the file
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"micmatch: error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as exc:
            remove_live_staging()
            code = 143 if isinstance(exc, Terminated) else 130
            click.echo("micmatch: interrupted; finished outputs are complete, unfinished ones were removed",
                       err=True)
            ctx.exit(code)
        finally:
            restore_termination(previous)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="micmatch")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors, and every file of warnings a batch sums up.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Measure, match and simulate the frequency responses of recording devices.

    \b
    Typical use:
      micmatch match tablet.wav studio.wav -o tablet_matched.wav --report report/
      micmatch profile recordings/ -o responses.json --device-from dir
      micmatch correct recordings/phone --responses responses.json --device phone --reference studio -o matched/
      micmatch event phone1.wav phone2.wav camera.wav -o stems/
      micmatch demo -o demo-output
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


for _group, _cmds in SUBCOMMANDS.items():
    for _cmd in _cmds:
        _group.add_command(_cmd)
for _cmd in COMMANDS:
    main.add_command(_cmd)
