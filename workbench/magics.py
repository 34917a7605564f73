"""IPython magics: ``%cluster`` (engines), ``%%train`` (training runs), ``%train_compare``.

Load them with ``%load_ext workbench``. Arguments are parsed the IPython way
(:mod:`IPython.core.magic_arguments`, shared argument groups as in ipyparallel); nothing is
``eval``-ed. The ``%%train`` cell body is ordinary code run in the kernel namespace; it defines
``model`` and ``train_data``, and ``loss_fn`` (optional for inputs-only data whose model
returns its own loss), and may define ``optimizer``, ``val_data``, ``metrics``, ``targets`` (a
ChipSet's target variables), ``transform`` (a function of each whole batch), ``geocodes`` /
``val_geocodes`` / ``partition_fn`` (partitions of a plain Dataset). Optional names count only
if the cell itself assigns them; a required name the cell does not assign is taken from earlier
cells and announced, and a name the cell binds that is a near miss of one it should
(``train_dat``) is an error. A cell whose body fails, or whose training fails or is
interrupted, fails (Run All stops there). The magic builds a
:class:`~workbench.training.request.TrainRequest` and calls
:func:`~workbench.cluster.orchestrate.launch_training`; the objects travel to the engines with
cloudpickle. Clusters bind to ``127.0.0.1`` unless ``--ip`` says otherwise.

Example session::

    %load_ext workbench
    %cluster start -n 2
    %%train --engines 2 --strategy ddp --epochs 2 --batch-size 64 -o result
    model = NDVIRegressor(chip_size=8)
    train_data = chips                       # a ChipSet (or any torch Dataset of (x, y))
    targets = ["ndvi"]
    loss_fn = torch.nn.functional.mse_loss
    %train_compare

The full usage of each magic follows.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from workbench._optional import lazy_import
from workbench.cluster.ipp import IpyparallelCluster
from workbench.cluster.launch import LocalProcessLauncher, find_launcher
from workbench.cluster.orchestrate import launch_training
from workbench.cluster.schedulers import LAUNCHERS, WaitProgress, scheduler
from workbench.cluster.spec import ClusterSpec, PartitionSpec, TrainRequest
from workbench.errors import LaunchError, WorkbenchError
from workbench.metering.carbon import EstimateMeter
from workbench.metering.events import StepEvent
from workbench.training.result import Comparison
from workbench.training.strategies import SHARDING_MODES, find_strategy, registry

__all__ = ["WorkbenchMagics", "load_ipython_extension", "unload_ipython_extension"]

#: IPython's magic_arguments is untyped: use it through ``Any`` (mypy strict).
ma: Any = _magic_arguments
_F = TypeVar("_F", bound=Callable[..., Any])


def magic_arguments() -> Callable[[_F], _F]:
    """Typed :func:`IPython.core.magic_arguments.magic_arguments`."""
    return cast(Callable[[_F], _F], ma.magic_arguments())


def argument(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    """Typed :func:`IPython.core.magic_arguments.argument`."""
    return cast(Callable[[_F], _F], ma.argument(*args, **kwargs))


#: Names a %%train cell may define, besides ``model``, ``train_data`` and ``loss_fn``.
OPTIONAL_NAMES = (
    "optimizer",
    "val_data",
    "metrics",
    "targets",
    "transform",
    "geocodes",
    "val_geocodes",
    "partition_fn",
)
#: Names a %%train cell defines (``loss_fn`` may be left out when the model returns the loss).
REQUIRED_NAMES = ("model", "train_data", "loss_fn")


def _partition(text: str) -> PartitionSpec:
    try:
        return PartitionSpec.parse(text)
    except LaunchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _strategy(text: str) -> str:
    try:
        return find_strategy(text).name
    except LaunchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _strategy_help() -> str:
    return "; ".join(f"{name}: {s.help}" for name, s in registry().items())


def _positive(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _apply(f: Any, decorators: list[Any]) -> Any:
    for deco in reversed(decorators):  # so they read top-down in the help text
        f = deco(f)
    return f


def launch_args(f: Any) -> Any:
    """``--engines``, ``--launcher``, ``--timeout``."""
    return _apply(
        f,
        [
            ma.argument_group("Where it runs"),
            ma.argument(
                "-n",
                "--engines",
                type=_positive(int),
                default=None,
                help="worker processes (default: 1 for single, else the cluster size or 2)",
            ),
            ma.argument(
                "--launcher",
                type=_train_launcher,
                default="ipyparallel",
                metavar="{ipyparallel,local}",
                help="ipyparallel engines (default: the %%cluster's; started on loopback if "
                "none) or fresh local processes. Engines of a batch scheduler come from "
                "%%cluster start --launcher slurm|pbs|sge|lsf|htcondor|mpi|ssh",
            ),
            ma.argument(
                "--interface",
                default=None,
                metavar="NAME",
                help="network interface of the DDP/FSDP rendezvous and of gloo/NCCL "
                "(default: the cluster's --interface; loopback on one host)",
            ),
            ma.argument(
                "--timeout",
                type=_positive(float),
                default=None,
                help="stop the run after this many seconds",
            ),
        ],
    )


def _train_launcher(text: str) -> str:
    if text.lower() in ("ipyparallel", "local"):
        return text.lower()
    if text.lower() in LAUNCHERS:
        raise argparse.ArgumentTypeError(
            f"{text!r} launches engines: start them with %cluster start --launcher {text.lower()} "
            "-n N, then %%train trains on them (--launcher is ipyparallel or local)"
        )
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose ipyparallel or local)")


def _engine_launcher(text: str) -> str:
    try:
        return scheduler(text).name
    except LaunchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cluster_args(f: Any) -> Any:
    """Add the options of ``%cluster``: where engines run, the batch job, waiting, addressing."""
    return _apply(
        f,
        [
            ma.argument(
                "action", choices=["start", "connect", "status", "stop"], help="what to do"
            ),
            ma.argument_group("Engines (start)"),
            ma.argument(
                "-n", "--engines", type=_positive(int), default=None, help="engines (default 2)"
            ),
            ma.argument(
                "--launcher",
                type=_engine_launcher,
                default=None,
                metavar="NAME",
                help=f"engine launcher: {', '.join(LAUNCHERS)} (ipyparallel's; default: the "
                "profile's, else local)",
            ),
            ma.argument("--queue", "--partition", dest="queue", default=None, help="batch queue"),
            ma.argument("--account", default=None, help="account charged for the job"),
            ma.argument(
                "--time-limit",
                "--time",
                dest="time_limit",
                default=None,
                metavar="TIME",
                help="time limit of the job: minutes, H:MM:SS or D-HH:MM:SS",
            ),
            ma.argument(
                "--gpus-per-engine", type=_positive(int), default=None, metavar="N", help="GPUs"
            ),
            ma.argument(
                "--cpus-per-engine",
                type=_positive(int),
                default=None,
                metavar="N",
                help="CPUs (and torch threads) per engine",
            ),
            ma.argument(
                "--directive",
                action="append",
                default=[],
                metavar="LINE",
                help="extra job-script directive, e.g. --directive=--qos=debug (repeatable)",
            ),
            ma.argument(
                "--ip",
                default=None,
                help="controller address (default loopback; 0.0.0.0 listens everywhere and "
                "advertises the host's reachable address)",
            ),
            ma.argument(
                "--hosts",
                type=_positive(int),
                default=None,
                metavar="N",
                help="N engines as hosts in network namespaces, links shaped (needs root)",
            ),
            ma.argument(
                "--rate",
                type=_positive(float),
                default=None,
                metavar="MBIT",
                help="with --hosts: rate of every link, Mbit/s (default 1000)",
            ),
            ma.argument_group("Start and connect"),
            ma.argument(
                "--profile",
                default=None,
                help="IPython profile: its ipcluster_config.py and security/ folder",
            ),
            ma.argument("--profile-dir", default=None, help="profile folder"),
            ma.argument(
                "--timeout",
                type=_positive(float),
                default=None,
                help="seconds to wait for engines to register (default 120)",
            ),
            ma.argument(
                "--interface",
                default=None,
                metavar="NAME",
                help="network interface of the cluster: the controller's address, the DDP "
                "rendezvous, GLOO_SOCKET_IFNAME/NCCL_SOCKET_IFNAME",
            ),
            ma.argument_group("Connect"),
            ma.argument("--cluster-id", default=None, help="cluster id within the profile"),
            ma.argument(
                "--wait",
                type=_positive(int),
                default=None,
                metavar="N",
                help="wait until N engines have registered (with progress, up to --timeout)",
            ),
        ],
    )


#: ``%cluster`` options by the actions they apply to (others are refused, never ignored).
_CLUSTER_OPTIONS = {
    "engines": ("start",),
    "launcher": ("start",),
    "queue": ("start",),
    "account": ("start",),
    "time_limit": ("start",),
    "gpus_per_engine": ("start",),
    "cpus_per_engine": ("start",),
    "directive": ("start",),
    "ip": ("start",),
    "hosts": ("start",),
    "rate": ("start",),
    "profile": ("start", "connect"),
    "profile_dir": ("start", "connect"),
    "timeout": ("start", "connect"),
    "interface": ("start", "connect"),
    "cluster_id": ("connect",),
    "wait": ("connect",),
}


class _WaitDisplay:
    """One updating line while ``%cluster`` waits for engines (at most one update a second)."""

    def __init__(self, label: str, every_s: float = 1.0) -> None:
        ipy_display: Any = lazy_import("IPython.display")
        self._display, self._pretty = ipy_display.display, ipy_display.Pretty
        self.label = label
        self.every_s = every_s
        self.handle: Any = None
        self.t = 0.0
        self.shown = ""

    def __call__(self, progress: WaitProgress) -> None:
        key = f"{progress.registered}|{progress.job}"
        if key == self.shown and time.monotonic() - self.t < self.every_s:
            return
        self.shown, self.t = key, time.monotonic()
        text = self._pretty(f"{self.label}: {progress}")
        if self.handle is None:
            self.handle = self._display(text, display_id=True)
        else:
            self.handle.update(text)


def strategy_args(f: Any) -> Any:
    """``--strategy``, ``--sharding``, ``--partition``, ``--transfer``, ``--no-lockstep``, ..."""
    return _apply(
        f,
        [
            ma.argument_group("Strategy"),
            ma.argument(
                "-s",
                "--strategy",
                type=_strategy,
                default="single",
                metavar="NAME",
                help=f"how to train (default single). {_strategy_help()}",
            ),
            ma.argument(
                "--sharding",
                choices=SHARDING_MODES,
                default=None,
                help="FSDP sharding mode (default full_shard)",
            ),
            ma.argument(
                "--shard-group-size",
                type=_positive(int),
                default=None,
                help="hybrid_shard: ranks per shard group (default: ranks per host)",
            ),
            ma.argument(
                "--partition",
                type=_partition,
                default=None,
                metavar="SCHEME:PRECISION",
                help="partitioned: geocode cells, e.g. geohash:5 (default) or quadkey:14",
            ),
            ma.argument(
                "--transfer",
                choices=["glcm"],
                default=None,
                help="partitioned: warm-start from texture-similar partitions (GLCM + k-means)",
            ),
            ma.argument(
                "--transfer-clusters",
                type=_positive(int),
                default=None,
                help="texture clusters (default: best silhouette score)",
            ),
            ma.argument(
                "--tokens-per-node",
                type=_positive(int),
                default=256,
                help="virtual nodes per engine on the placement ring",
            ),
            ma.argument(
                "--no-lockstep",
                action="store_true",
                help="partitioned: train each worker's models one after another, not all at once "
                "(lockstep is the same training, only faster; see workbench.training.lockstep)",
            ),
        ],
    )


def train_args(f: Any) -> Any:
    """``--epochs``, ``--batch-size``, ``--lr``, ``--seed``, checkpoints, ``--name``."""
    return _apply(
        f,
        [
            ma.argument_group("Training"),
            ma.argument(
                "-e", "--epochs", type=_positive(int), default=1, help="epochs (default 1)"
            ),
            ma.argument(
                "-b", "--batch-size", type=_positive(int), default=32, help="batch size per worker"
            ),
            ma.argument(
                "--lr",
                type=_positive(float),
                default=None,
                help="learning rate (default: the optimizer's, or 1e-3 for the default Adam)",
            ),
            ma.argument("--seed", type=int, default=0, help="seed of the data order"),
            ma.argument(
                "--drop-last",
                action="store_true",
                help="train on full batches only (the tail of each epoch's order is left out)",
            ),
            ma.argument(
                "--checkpoint",
                metavar="DIR",
                default=None,
                help="checkpoint folder (default: a new one under the temporary directory)",
            ),
            ma.argument("--no-checkpoint", action="store_true", help="write no checkpoints"),
            ma.argument(
                "--resume",
                metavar="PATH",
                default=None,
                help="continue from a checkpoint file or run folder",
            ),
            ma.argument("--name", default=None, help="name of the run in %%train_compare"),
        ],
    )


def output_args(f: Any) -> Any:
    """``-o``, ``--live``/``--no-live``, ``--quiet``, ``--dry-run``."""
    return _apply(
        f,
        [
            ma.argument_group("Output"),
            ma.argument(
                "-o",
                "--out",
                metavar="NAME",
                default=None,
                help="store the TrainResult in this variable",
            ),
            ma.argument(
                "--live",
                dest="live",
                action="store_const",
                const=True,
                default=None,
                help="show live loss/throughput/CO2 plots (default: in a notebook)",
            ),
            ma.argument(
                "--no-live", dest="live", action="store_const", const=False, help="no live plots"
            ),
            ma.argument("-q", "--quiet", action="store_true", help="no progress line"),
            ma.argument(
                "--dry-run",
                action="store_true",
                help="run the cell and show the plan (request, placement), do not train",
            ),
        ],
    )


class _Progress:
    """One updating text line per run: each worker's epoch, step and last loss."""

    def __init__(self, every_s: float = 0.5) -> None:
        ipy_display: Any = lazy_import("IPython.display")
        display, pretty = ipy_display.display, ipy_display.Pretty
        self._pretty = pretty
        self.every_s = every_s
        self.last: dict[int, StepEvent] = {}
        self.t = 0.0
        self.handle = display(pretty("%%train: starting ..."), display_id=True)

    def __call__(self, event: StepEvent) -> None:
        self.last[event.rank] = event
        if time.monotonic() - self.t >= self.every_s:
            self.show()

    def show(self) -> None:
        self.t = time.monotonic()
        parts = [
            f"rank {r}: epoch {e.epoch} step {e.step}"
            + (f" [{e.partition}]" if e.partition else "")
            + (f" loss {e.loss:.4g}" if e.loss is not None else "")
            for r, e in sorted(self.last.items())
        ]
        if self.handle is not None:
            self.handle.update(self._pretty("%%train: " + " | ".join(parts)))


class _Watchers:
    """What a %%train run shows while it runs: the live plot, its power meter, the progress.

    Closed when the run ends, however it ends.
    """

    def __init__(self, args: argparse.Namespace, request: TrainRequest, shell: Any) -> None:
        self.callbacks: list[Any] = []
        self.live: Any = None
        self.meter: EstimateMeter | None = None
        self.progress: _Progress | None = None
        want_live = args.live
        if want_live is None:
            want_live = getattr(shell, "kernel", None) is not None
        if want_live:
            from workbench.widgets.live import LivePlot

            self.live = LivePlot(title=request.label)
            self.meter = EstimateMeter(sample_interval_s=1.0)
            self.meter.subscribe(self.live.update)
            self.callbacks += [self.live.update, self.meter.update]
            self.live.display()
        if not args.quiet:
            self.progress = _Progress()
            self.callbacks.append(self.progress)

    def close(self) -> None:
        """Show the last progress, the last power sample, and the complete plot."""
        if self.progress is not None:
            self.progress.show()
        if self.meter is not None and self.meter.result is None:
            with contextlib.suppress(WorkbenchError):  # no step ran: nothing to close
                self.meter.stop()
        if self.live is not None:
            self.live.close()


@magics_class
class WorkbenchMagics(Magics):
    """The workbench magics; one instance per shell holds its cluster and comparison."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.active: IpyparallelCluster | None = None
        self.comparison = Comparison()

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are not registered with a shell"
        return self.shell

    # -- %cluster ------------------------------------------------------------------------------
    @magic_arguments()
    @cluster_args
    @line_magic
    def cluster(self, line: str) -> Any:
        """Start engines (local or a batch job), connect to a cluster, show its status, stop it.

        ``%cluster start -n 2`` starts a controller on 127.0.0.1 and 2 local engines with a
        private profile folder. ``%cluster start --launcher slurm -n 4 --partition gpu
        --time-limit 1:00:00 --gpus-per-engine 1`` submits the engines as a Slurm job (also
        ``pbs``, ``sge``, ``lsf``, ``htcondor``, ``mpi``, ``ssh``) and waits for them with
        progress, up to ``--timeout`` seconds; ``--profile NAME`` uses a profile's launcher
        configuration and ``security/`` folder. ``%cluster connect --profile NAME --wait 4``
        attaches to a running cluster and waits for 4 engines; ``%cluster status`` returns the
        engines (host, pid, batch job, state), dropping dead ones; ``%cluster stop`` stops a
        cluster started here (its job included) or disconnects from another. After the
        engines died (a walltime kill), ``%cluster start``/``connect`` replace the cluster.
        ``%cluster start --hosts 4 --rate 100`` starts 4 engines as hosts in network
        namespaces, their links shaped to 100 Mbit/s
        (:class:`~workbench.cluster.hosts.HostCluster`; needs root).
        """
        args = ma.parse_argstring(cast(Any, self).cluster, line)
        given = [k for k, v in vars(args).items() if k in _CLUSTER_OPTIONS and v not in (None, [])]
        wrong = [k for k in given if args.action not in _CLUSTER_OPTIONS[k]]
        if wrong:
            flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
            raise UsageError(f"{flags} does not apply to %cluster {args.action}")
        if args.action in ("start", "connect"):
            return self._cluster_up(args)
        if self.active is None:
            if args.action == "status":
                return {
                    "engines": [],
                    "owned": False,
                    "note": "no cluster: %cluster start -n 2 (local engines), %cluster start "
                    "--launcher slurm -n 2 (a batch job), or %cluster connect --profile NAME",
                }
            raise UsageError("no active cluster to stop")
        if args.action == "status":
            return self.active.status()
        self.active.stop()
        self.active = None
        return None

    def _cluster_up(self, args: argparse.Namespace) -> None:
        """``%cluster start`` / ``connect``: replace a cluster whose engines died, then wait."""
        if self.active is not None:
            ids = self.active.known_ids()
            dead = self.active.dead(ids)
            if ids and not dead:
                raise UsageError(
                    f"a cluster is already active with engines {ids}: %cluster stop first"
                )
            why = "; ".join(f"engine {e}: {w}" for e, w in dead.items()) or "no engine registered"
            print(f"%cluster: replacing the active cluster, whose engines are gone ({why})")
            self.active.stop()
            self.active = None
        try:
            spec = ClusterSpec(
                n=args.engines or args.wait or 2,
                ip=args.ip or "127.0.0.1",
                profile=args.profile,
                profile_dir=args.profile_dir,
                cluster_id=args.cluster_id,
                engine_timeout=args.timeout or 120.0,
                launcher=args.launcher,
                queue=args.queue,
                account=args.account,
                time_limit=args.time_limit,
                gpus_per_engine=args.gpus_per_engine,
                cpus_per_engine=args.cpus_per_engine,
                directives=tuple(args.directive),
                interface=args.interface,
            )
        except LaunchError as exc:
            raise UsageError(str(exc)) from exc
        if args.action == "start" and (args.hosts or args.rate):
            return self._hosts_up(args)
        show = _WaitDisplay(f"%cluster {args.action}")
        batch = spec.launcher is not None and scheduler(spec.launcher).batch
        if args.action == "start" and batch and spec.ip.startswith("127.") and not spec.interface:
            print(
                "%cluster: the controller listens on 127.0.0.1, which only engines on this host "
                "reach; for engines on other nodes give --interface NAME (or --ip 0.0.0.0)"
            )
        if args.action == "start":
            self.active = IpyparallelCluster.start(spec, progress=show)
            job = self.active.status()["job"]
            on = f"{self.active.scheduler.title} job {job['id']}" if job else f"on {spec.ip}"
            print(f"started {spec.n} engines ({on}): {self.active.engine_ids()}")
            return None
        self.active = IpyparallelCluster.connect(spec, wait=args.wait or 0, progress=show)
        ids = self.active.engine_ids()
        if ids:
            print(f"connected to engines {ids}")
        else:
            job = self.active.status()["job"]
            said = (
                f" ({self.active.scheduler.title} job {job['id']} is {job['state']})" if job else ""
            )
            print(
                f"connected; no engine has registered yet{said}: wait for them with "
                f"%cluster connect ... --wait N"
            )
        return None

    def _hosts_up(self, args: argparse.Namespace) -> None:
        """``%cluster start --hosts N [--rate MBIT]``: engines in namespaced hosts."""
        if not args.hosts:
            raise UsageError("--rate shapes the links of --hosts N: give --hosts too")
        from workbench.cluster.hosts import HostCluster

        try:
            self.active = HostCluster.start(args.hosts, rate_mbit=args.rate or 1000.0)
        except WorkbenchError as exc:
            raise UsageError(str(exc)) from exc
        print(f"started {self.active!r}")
        return None

    # -- %%train -------------------------------------------------------------------------------
    @magic_arguments()
    @launch_args
    @strategy_args
    @train_args
    @output_args
    @cell_magic
    def train(self, line: str, cell: str) -> Any:
        """Train the model the cell defines, in the kernel or on engines.

        The cell defines ``model``, ``train_data`` (a ChipSet or a torch Dataset of ``(x, y)``)
        and ``loss_fn``; optionally ``optimizer``, ``val_data``, ``metrics``, ``targets``,
        ``geocodes``, ``val_geocodes``, ``partition_fn``. Every run is added to
        ``%train_compare``; ``-o NAME`` stores the TrainResult, otherwise it is returned.
        """
        args = ma.parse_argstring(self.train, line)
        self._check_args(args)
        ns = self._shell.user_ns
        before = {name: ns.get(name, _MISSING) for name in OPTIONAL_NAMES}
        outcome = self._shell.run_cell(cell, store_history=False)
        if not outcome.success:
            error = outcome.error_before_exec or outcome.error_in_exec
            raise UsageError(
                f"the %%train cell failed before training ({type(error).__name__}, shown "
                "above); fix the cell and run it again"
            )
        request = self._request(args, before, cell)
        if args.dry_run:
            return self._plan(request)
        launcher = self._launcher(args, request)
        watchers = _Watchers(args, request, self._shell)
        try:
            result = launch_training(request, launcher, callbacks=watchers.callbacks)
        finally:
            watchers.close()
        self.comparison.add(result)
        if args.out:
            ns[args.out] = result
            return None
        return result

    def _check_args(self, args: argparse.Namespace) -> None:
        """Check the magic's own options (the strategy checks the request it builds)."""
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a Python variable name, got {args.out!r}")
        if args.no_checkpoint and args.checkpoint:
            raise UsageError("--checkpoint and --no-checkpoint exclude each other")
        if args.resume and not Path(args.resume).exists():
            raise UsageError(
                f"--resume {args.resume!r} does not exist; give a checkpoint file or the run "
                "folder named by the previous run's error or result.checkpoint_dir"
            )

    def _request(
        self, args: argparse.Namespace, before: dict[str, Any], cell: str = ""
    ) -> TrainRequest:
        ns = self._shell.user_ns
        assigned = _assigned_names(self._shell.transform_cell(cell))
        _check_near_misses(assigned)
        missing = [n for n in ("model", "train_data") if n not in ns]
        if missing:
            raise UsageError(
                f"the %%train cell must define {' and '.join(missing)} (model and train_data "
                "are required; loss_fn too unless the model returns its own loss; optimizer, "
                "val_data, metrics, targets, transform are optional)"
            )
        earlier = [n for n in REQUIRED_NAMES if n in ns and n not in assigned]
        if earlier:
            print(f"%%train: using {', '.join(earlier)} from earlier cells (not assigned here)")
        optional = {
            n: ns[n]
            for n in OPTIONAL_NAMES
            if n in ns and (n in assigned or ns[n] is not before[n])
        }
        strategy = find_strategy(args.strategy)
        engines = args.engines or (1 if strategy.in_kernel else self._cluster_size())
        targets = optional.get("targets")
        if isinstance(targets, str):
            targets = (targets,)
        try:
            return TrainRequest(
                model=ns["model"],
                train_data=ns["train_data"],
                loss_fn=ns.get("loss_fn"),
                optimizer=optional.get("optimizer"),
                val_data=optional.get("val_data"),
                metrics=optional.get("metrics"),
                targets=tuple(targets) if targets else None,
                transform=optional.get("transform"),
                geocodes=optional.get("geocodes"),
                val_geocodes=optional.get("val_geocodes"),
                partition_fn=optional.get("partition_fn"),
                strategy=strategy.name,
                engines=engines,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                drop_last=args.drop_last,
                sharding=args.sharding,
                shard_group_size=args.shard_group_size,
                partition=args.partition,
                transfer=args.transfer,
                transfer_clusters=args.transfer_clusters,
                tokens_per_node=args.tokens_per_node,
                lockstep=not args.no_lockstep,
                timeout=args.timeout,
                resume=args.resume,
                checkpoint_dir=args.checkpoint,
                name=args.name,
                checkpoint=not args.no_checkpoint,
            )
        except WorkbenchError as exc:
            raise UsageError(str(exc)) from exc

    def _cluster_size(self) -> int:
        return len(self.active.engine_ids()) if self.active is not None else 2

    def _plan(self, request: TrainRequest) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "name": request.label,
            "strategy": request.strategy,
            "engines": request.engines,
        }
        names = [f"engine-{i}" for i in range(request.engines)]
        try:
            plan.update(find_strategy(request.strategy).describe(request, names))
        except WorkbenchError as exc:
            raise UsageError(str(exc)) from exc
        return plan

    def _launcher(self, args: argparse.Namespace, request: TrainRequest) -> Any:
        if find_strategy(request.strategy).in_kernel:
            return None
        if args.launcher == "local":
            if args.interface:
                raise UsageError("--interface applies to engines: local processes use loopback")
            cls = find_launcher("local")
            launcher: Any = cls(n=request.engines)
            assert isinstance(launcher, LocalProcessLauncher)
            return launcher
        if self.active is None:
            print(
                f"%%train: starting {request.engines} local engines on 127.0.0.1 "
                "(stop them with %cluster stop)"
            )
            self.active = IpyparallelCluster.start(ClusterSpec(n=request.engines))
        known = self.active.known_ids()
        dead = self.active.dead(known)
        have = len(known) - len(dead)
        if have < request.engines and not dead:  # dead engines: the launcher's EngineDiedError
            raise UsageError(
                f"the cluster has {have} engines, --engines {request.engines} needs more. "
                + self.active.hint(request.engines)
            )
        launcher = self.active.launcher()
        if args.interface:
            launcher.interface = args.interface
        return launcher

    # -- %train_compare ------------------------------------------------------------------------
    @magic_arguments()
    @argument("--baseline", default=None, help="run the ratios refer to (default: the first)")
    @argument("--reset", action="store_true", help="forget all runs")
    @argument("-o", "--out", metavar="NAME", default=None, help="store the Comparison here")
    @line_magic
    def train_compare(self, line: str) -> Any:
        """Show the table comparing this session's runs (time, bytes, validation loss, CO2)."""
        args = ma.parse_argstring(cast(Any, self).train_compare, line)
        if args.reset:
            self.comparison.clear()
            return None
        if args.baseline and args.baseline not in self.comparison:
            raise UsageError(f"no run named {args.baseline!r}; runs: {list(self.comparison)}")
        if args.out:
            self._shell.user_ns[args.out] = self.comparison
        return self.comparison.report(args.baseline) if len(self.comparison) else self.comparison


def _check_near_misses(assigned: set[str]) -> None:
    """Refuse a cell that binds a near miss (``train_dat``) of a name it should bind instead.

    Raises
    ------
    UsageError
        Naming both names and the fix.
    """
    expected = (*REQUIRED_NAMES, *OPTIONAL_NAMES)
    for name in sorted(assigned - set(expected)):
        close = difflib.get_close_matches(name, expected, n=1, cutoff=0.8)
        if close and close[0] not in assigned:
            raise UsageError(
                f"the cell binds {name!r}, but %%train reads {close[0]!r}: rename {name} to "
                f"{close[0]} (otherwise the run would use {close[0]!r} from an earlier cell, "
                "or have none)"
            )


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _assigned_names(code: str) -> set[str]:
    """Names the (IPython-transformed) cell binds: ``x = ...``, ``for x in``, ``def x``, imports.

    An optional name such as ``val_data`` counts when the cell binds it, even to the object it
    already held; one the cell leaves alone counts only if something else in it rebinds it.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


_LOADED: dict[int, WorkbenchMagics] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics on ``ipython`` (``%load_ext workbench``); a second call does nothing.

    The IPython startup snippet calls it directly, so a notebook's own ``%load_ext workbench``
    afterwards is quiet and keeps the session's runs and cluster.
    """
    if id(ipython) in _LOADED:
        return
    magics = WorkbenchMagics(ipython)
    ipython.register_magics(magics)
    _LOADED[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    """Unregister the magics and stop a cluster they started."""
    magics = _LOADED.pop(id(ipython), None)
    table = ipython.magics_manager.magics
    for kind, names in (("line", ("cluster", "train_compare")), ("cell", ("train",))):
        for name in names:
            table[kind].pop(name, None)
    if magics is not None and magics.active is not None:
        magics.active.stop()
        magics.active = None


def _usage(method: Any) -> str:
    return str(getattr(method, "__doc__", "") or "")


__doc__ = (__doc__ or "") + "\n".join(
    [
        "",
        _usage(WorkbenchMagics.cluster),
        _usage(WorkbenchMagics.train),
        _usage(WorkbenchMagics.train_compare),
    ]
)
