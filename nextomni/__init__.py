"""NExT-OMNI: an any-to-any omnimodal model driven by discrete flow matching."""

__version__ = "0.1.0"
