"""petridish: a laboratory for the science of deep learning."""

__version__ = "0.1.0"
