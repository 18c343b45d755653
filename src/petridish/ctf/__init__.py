"""The Common Task Framework referee (Donoho 2017): public training data, enrolled competitors,
and a referee that scores ONNX prediction rules on a test set sequestered on the server, with a
Ladder leaderboard (Blum & Hardt 2015) that resists probing.

Server: ``create_app(load_settings(...))`` or ``petridish ctf serve``. Client: ``petridish ctf ...``
or ``petridish.ctf.client.Client``. Models: ``export_onnx(model, path, input_dim=...)``.
"""
from petridish.ctf.export import export_onnx

__all__ = ["export_onnx", "create_app", "load_settings", "Settings"]


def __getattr__(name):   # the server stack is imported only when used
    if name == "create_app":
        from petridish.ctf.main import create_app
        return create_app
    if name in ("load_settings", "Settings"):
        from petridish.ctf import settings
        return getattr(settings, name)
    raise AttributeError(name)
