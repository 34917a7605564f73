"""IPython startup snippet: load the workbench magics in every kernel (opt-in).

Copy it into ``$IPYTHONDIR/profile_default/startup/`` (Binder's postBuild does) or a hub
image's ``/etc/ipython/startup/``; then ``%%train`` and the cluster magics are ready
without ``%load_ext workbench``.
"""

try:
    get_ipython().extension_manager.load_extension("workbench")  # type: ignore[name-defined]  # noqa: F821
except Exception as exc:  # a broken install must not stop the kernel from starting
    print(f"workbench magics not loaded: {exc}")
