"""`petridish ui`: a local, read-only web dashboard over the results store (FastAPI + Jinja,
every asset served from the package). See app.create_app."""
from petridish.ui.app import create_app
from petridish.ui.settings import Settings, load_settings

__all__ = ["create_app", "Settings", "load_settings"]
