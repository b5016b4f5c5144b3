"""Command line: parses and dispatches only (tests call it in-process).

Each command builds its stage's frozen config (TOML file, then flags on top)
and calls that stage's `run(...)`. User errors (`HcdgError`) become one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import click

from hcdg import __version__
from hcdg.pipeline.errors import HcdgError


class _Group(click.Group):
    """A click group that turns `HcdgError` into a one-line error and exit code 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except HcdgError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hcdg")
def main() -> None:
    """hcdg: image-free domain generalization via CLIP for 3D hand pose (WACV 2023).

    Typical flow: `hcdg synth` (or real data) -> `hcdg embed` -> `hcdg train`
    -> `hcdg eval` -> `hcdg report`. `hcdg demo` runs it all offline.
    """


# --- data / synth commands (foundation) -------------------------------------

# --- prompts / embed / store commands (stage one) ---------------------------

# --- train / sweep commands (stage two) -------------------------------------

# --- eval / report / viz / demo commands -------------------------------------


if __name__ == "__main__":
    main()
