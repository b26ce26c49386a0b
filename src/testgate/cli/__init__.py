"""The ``testgate`` command line: Typer commands over ``dispatch``, running the platform in-process."""
