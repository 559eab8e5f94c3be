"""The ``edgefm`` command line: the group, the exit-status mapping, and the entry point.

Each command (one module per command group beside this one) builds a config,
calls one library function and prints its result. Heavy libraries (TensorFlow,
LiteRT, ONNX Runtime) are imported inside the commands, so ``edgefm --help``
starts fast. Errors are mapped to exit statuses in one place
(``EdgefmGroup.invoke``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from edgefm.cli import data_cmd, diff_cmd, export_cmd, tools_cmd, train_cmd, verify_cmd
from edgefm.cli.console import JSON_PRINTED, plain
from edgefm.core.errors import EdgefmError


def _fail(message: str, code: int, as_json: bool = False) -> None:
    # One paragraph on one line: the terminal wraps it, and grep still finds it.
    message = plain(" ".join(message.split()))  # names from files may hold escape sequences
    click.echo("error: " + message, err=True)
    if as_json:  # and for scripts, the same on stdout as the one JSON document they parse
        click.echo(json.dumps({"error": message, "exit_code": code}))
    if code == 130:
        # An interrupt raised inside a library (a second signal is: ``interrupt_where_safe``) unwound through its
        # `with` blocks, and the generators it left suspended are finalised as the interpreter exits: TensorFlow's
        # then print "Exception ignored in: <generator object _DefaultGraphStack.get_controller ...>" and a
        # traceback ("Nesting violated for default stack"; seen after a SIGINT during export's conversion, before
        # the first signal waited for TensorFlow to return). The message above has said what happened.
        sys.unraisablehook = lambda unraisable: None
    sys.exit(code)


def _json_args(ctx: click.Context) -> bool:
    """``--json`` among the subcommand's arguments (before a ``--``); read before click consumes them."""
    args = [*getattr(ctx, "_protected_args", []), *ctx.args]
    return "--json" in (args[: args.index("--")] if "--" in args else args)


class EdgefmGroup(click.Group):
    """Maps library errors to one-paragraph messages and exit statuses; no tracebacks.

    With ``--json`` the error is also one JSON object on stdout: ``{"error": ..., "exit_code": ...}``.
    """

    def invoke(self, ctx: click.Context) -> Any:
        from edgefm.core.fileio import private_tempdir
        from edgefm.core.interrupts import signal_watcher

        _terminate_like_interrupt()
        # A SIGTERM ends the command within seconds even inside a C call (signal_watcher); everything it or
        # its children put in $TMPDIR goes into a private directory removed at the end (private_tempdir).
        with signal_watcher(lambda: f"edgefm {ctx.invoked_subcommand or ''}".strip()), private_tempdir():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        wants_json = _json_args(ctx)
        # A command that printed its JSON result and then fails (``verify`` with a failed check) has
        # already given scripts their one document, with the verdict in it.
        as_json = lambda: wants_json and not ctx.meta.get(JSON_PRINTED)  # noqa: E731
        try:
            return super().invoke(ctx)
        except EdgefmError as e:
            if _SIGNALLED and e.exit_code != 130:  # a library turned the interrupt into its own error
                _fail(f"interrupted by {_SIGNALLED[-1]}.", 130, as_json())
            _fail(str(e), e.exit_code, as_json())
        except KeyboardInterrupt:
            how = f" by {_SIGNALLED[-1]}" if _SIGNALLED else ""
            _fail(f"interrupted{how}.", 130, as_json())
        except BrokenPipeError:
            _closed_stdout()
        except click.ClickException as e:
            if not as_json():
                raise
            e.show()  # click's usage message on stderr, as without --json
            click.echo(json.dumps({"error": " ".join(e.format_message().split()), "exit_code": e.exit_code}))
            sys.exit(e.exit_code)
        except (click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except OSError as e:  # an unwrapped file-system failure: name the file, no traceback
            _fail(f"{e.filename or 'a file'}: {e.strerror or e}. Check the path and its permissions.", 1, as_json())
        except Exception as e:  # a bug in edgefm or an unwrapped library failure
            if _SIGNALLED:  # ... or a library that turned the interrupt into its own error
                _fail(f"interrupted by {_SIGNALLED[-1]}.", 130, as_json())
            if os.environ.get("EDGEFM_DEBUG"):
                raise
            _fail(
                f"unexpected {type(e).__name__}: {e}. This is a bug in edgefm; re-run with "
                "EDGEFM_DEBUG=1 to see the traceback and report it.",
                70,
                as_json(),
            )


#: the signals that interrupted this process (for the message)
_SIGNALLED: list[str] = []


def _terminate_like_interrupt() -> None:
    """SIGTERM (a CI timeout, ``docker stop``) ends every command as SIGINT does: exit 130, a message.

    By default SIGTERM killed verify, predict, inspect and benchmark with status 143
    and no word, and left benchmark's measuring child running. As a KeyboardInterrupt
    it unwinds through the same clean-up as Ctrl-C (``subprocess.run`` kills its
    child, temporary directories are removed). Both are raised where it is safe: not
    inside TensorFlow or an ``import``, but as that call returns to edgefm's code
    (``edgefm.core.interrupts.interrupt_where_safe``). ``train`` and ``export``
    install their own handlers on top (``interrupts_noted``), which say what was kept.
    """
    import signal
    import threading

    from edgefm.core.interrupts import interrupt_where_safe

    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: Any) -> None:
        _SIGNALLED.append(signal.Signals(signum).name)
        interrupt_where_safe(frame)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)


def _closed_stdout() -> None:
    """The reader went away (``edgefm predict *.png | head -1``): stop quietly, as a C tool killed by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain
    except OSError:
        pass
    sys.exit(141)


@click.group(cls=EdgefmGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="edgefm")
def cli() -> None:
    """Train a Fashion-MNIST classifier in TensorFlow, export it to TFLite and ONNX,
    and prove that the exported files give TensorFlow's predictions.

    \b
    Typical run:
      edgefm train
      edgefm export --format all --quantize all
      edgefm verify
    """


for _command in (data_cmd.data, train_cmd.train_cmd, export_cmd.export_cmd, verify_cmd.verify_cmd,
                 diff_cmd.diff_cmd, tools_cmd.predict_cmd, tools_cmd.benchmark_cmd, tools_cmd.inspect_cmd):
    cli.add_command(_command)


def main() -> None:
    try:
        cli(prog_name="edgefm")
    finally:  # output still buffered when the reader has gone: flush it here, quietly
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _closed_stdout()


if __name__ == "__main__":  # pragma: no cover
    main()
