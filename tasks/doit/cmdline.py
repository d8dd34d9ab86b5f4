"""A doit command line, read as doit reads it (doit_cmd.DoitMain.run) before doit acts on it.

doit parses its arguments before it loads dodo.py but does not hand the result over; the
session (tasks.doit.session) needs the command, and the state backend and file if given,
before doit opens its state, so it reads sys.argv once more with doit's own parsers.
"""

from dataclasses import dataclass

from doit.cmd_base import DodoTaskLoader, DoitCmdBase
from doit.cmdparse import CmdOption, CmdParse, CmdParseError
from doit.doit_cmd import DoitMain

# doit's commands by name (`run`, `list`, `info`, ...), each a doit.cmd_base.Command class.
COMMANDS = {cmd.get_name(): cmd for cmd in DoitMain.DOIT_CMDS}


@dataclass(frozen=True)
class CommandLine:
    """What a doit command line asks for.

    ``args``: for `run`, the tasks asked for ([] for the defaults), options parsed away;
    for another command, what follows its name, as given. ``backend`` and ``dep_file``:
    `--backend` and `--db-file` when given, else None (DOIT_CONFIG's then stand).
    ``always`` and ``single``: `run`'s `-a` and `-s`.
    """

    command: str
    args: tuple[str, ...] = ()
    backend: str | None = None
    dep_file: str | None = None
    always: bool = False
    single: bool = False


def _options(*groups) -> CmdParse:
    return CmdParse([CmdOption(option) for group in groups for option in group])


def read(argv: list[str]) -> CommandLine:
    """The command line ``argv`` (without the program).

    doit's rule: the loader's options (`-f`, `-d`, `-k`) may come first, `name=value`
    arguments are variables, then the first argument names a command, else it is `run`.
    """
    try:
        _, args = _options(DodoTaskLoader.cmd_options).parse_only(argv)
    except CmdParseError:  # doit's "normal to fail parsing if RUN command is not explicit"
        args = argv
    args = [arg for arg in args if arg.startswith("-") or "=" not in arg]
    command = args.pop(0) if args and args[0] in COMMANDS else "run"
    cmd = COMMANDS[command]
    params: dict = {}
    if issubclass(cmd, DoitCmdBase):
        try:
            params, rest = _options(DoitCmdBase.base_options, DodoTaskLoader.cmd_options,
                                    cmd.cmd_options).parse_only(args)
        except CmdParseError:  # doit reports it, once it parses the line itself
            rest = [] if command == "run" else args
        if command == "run":
            args = rest
    return CommandLine(command, tuple(args), params.get("backend"), params.get("dep_file"),
                       bool(params.get("always")), bool(params.get("single")))
