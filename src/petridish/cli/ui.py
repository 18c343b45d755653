"""`petridish ui [--store URL] [--host H] [--port P]`: the local dashboard over the results store."""
from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(store: Optional[str] = typer.Option(None, "--store", help="SQLAlchemy URL or directory [./petridish-runs]."),
           host: str = typer.Option("127.0.0.1", "--host", help="Address to bind [127.0.0.1: this machine only; "
                                    "the dashboard has no login]."),
           port: int = typer.Option(8765, "--port", help="TCP port."),
           log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level.")) -> None:
        """A read-only web dashboard over the store: runs, figures, CIs, live progress, comparisons."""
        import uvicorn

        from petridish.errors import shown_url
        from petridish.ui import create_app, load_settings
        from petridish.ui.settings import LOOPBACK
        settings = load_settings(store=store, host=host, port=port)
        app_ = create_app(settings)                     # opens the store read-only; errors are one line
        if settings.host not in LOOPBACK:
            typer.echo(f"warning: the dashboard has no login; anyone who can reach {settings.host}:{settings.port} "
                       "can read every run in this store.", err=True)
        typer.echo(f"petridish dashboard on http://{settings.host}:{settings.port}  (store: {shown_url(app_.state.store.url)})",
                   err=True)
        uvicorn.run(app_, host=settings.host, port=settings.port, log_level=log_level, server_header=False)
