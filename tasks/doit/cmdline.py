"""A doit command line, read as doit reads it (doit_cmd.DoitMain.run) before doit acts on it.

doit parses its arguments before it loads dodo.py but does not hand the result over; the
lock, the per-task state and the context walk started at load need the command and the
task names earlier, so they read sys.argv again with doit's own parsers.
"""

from doit.cmd_base import DodoTaskLoader, DoitCmdBase
from doit.cmd_run import Run
from doit.cmdparse import CmdOption, CmdParse, CmdParseError


def commands() -> frozenset[str]:
    """The names of doit's commands (`run`, `list`, `info`, ...)."""
    from doit.doit_cmd import DoitMain

    return frozenset(cmd.get_name() for cmd in DoitMain.DOIT_CMDS)


def _options(*groups: list[dict]) -> CmdParse:
    return CmdParse([CmdOption(option) for group in groups for option in group])


def read(argv: list[str]) -> tuple[str, list[str]]:
    """(command, its arguments) of ``argv`` (without the program).

    doit's rule: the loader's options (`-f`, `-d`, `-k`) may come first, `name=value`
    arguments are variables, then the first argument names a command, else it is `run`.
    For `run` the arguments are the tasks asked for ([] for the defaults), options parsed
    away; for another command, what follows its name, as given.
    """
    try:
        _, args = _options(DodoTaskLoader.cmd_options).parse_only(argv)
    except CmdParseError:  # doit's "normal to fail parsing if RUN command is not explicit"
        args = argv
    args = [arg for arg in args if arg.startswith("-") or "=" not in arg]
    command = args.pop(0) if args and args[0] in commands() else "run"
    if command != "run":
        return command, args
    try:
        _, tasks = _options(DoitCmdBase.base_options, DodoTaskLoader.cmd_options,
                            Run.cmd_options).parse_only(args)
    except CmdParseError:
        return command, []
    return command, tasks


def command(argv: list[str]) -> str:
    """The doit command ``argv`` runs: `doit -n 2 build` → "run", `doit -f x.py list` → "list"."""
    return read(argv)[0]
