__version__ = "0.1.0"


def __getattr__(name):
    # lazy: `import n2amd_driver` stays light (no torch) until the calculator is asked for
    if name in ("N2AMDCalculator", "load_model"):
        from . import calculator

        return getattr(calculator, name)
    raise AttributeError(f"module 'n2amd_driver' has no attribute {name!r}")
