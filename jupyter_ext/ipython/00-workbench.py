"""IPython startup snippet: load the workbench magics in every kernel of this environment.

Installing workbench puts it in ``<env>/etc/ipython/startup/``, which IPython reads for the
kernels of that environment only (not machine-wide); Binder's postBuild also copies it into
the user's profile. ``%%train`` and ``%cluster`` are then ready without ``%load_ext
workbench``, and a notebook's own ``%load_ext workbench`` stays quiet: the extension is
registered directly, so IPython has not yet marked it as loaded, and loading twice is a no-op.
"""

try:
    import workbench as _workbench

    _workbench.load_ipython_extension(get_ipython())  # type: ignore[name-defined]  # noqa: F821
    del _workbench
except Exception as exc:  # a broken install must not stop the kernel from starting
    print(f"workbench magics not loaded: {exc}")
