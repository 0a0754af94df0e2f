"""Sweeps run through one executor: in-process by default, Ray when asked.

A sweep is `executor.map(function, items)`: `function(item)` for every item,
results yielded in the items' order whichever worker finished first, so a
check's verdict, its counterexamples (the first by domain order) and a bench's
table are those of the in-process run. Stopping early (a refuted check stops
reading results) cancels what is still running.

- `InProcess()`: a plain loop in this process; Ray is never imported.
- `RayExecutor(workers=N)`: a local Ray bound to loopback (no dashboard, no
  usage statistics) with N worker processes; `RayExecutor(address=...)` joins a
  running cluster (`ray start --head` on one machine, `ray start --address=...`
  on the others; the toolkit must be importable on every node). Local workers
  import from this process's sys.path, so they run the same code.

The function (with the models and programs it carries) goes to the object store
once per map and each worker deserialises it once, not once per item. A worker
that dies (its process killed, its node lost) has its item run again, up to
MAX_RETRIES times, and the executor says so through `notify`; an error raised by
the function itself is raised here, as in-process. Ctrl-C cancels every running
item and, for a local Ray, shuts it down.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator

from distill.errors import BadInputError, DistillError

MAX_RETRIES = 3
"""Runs of one item after its worker died, before the sweep fails."""
IN_FLIGHT_PER_WORKER = 2
"""Items submitted per worker and not yet finished: one running, one waiting, so no worker idles."""
MAX_AHEAD_PER_WORKER = 64
"""Finished results held per worker while an earlier item still runs."""
RAY_EXTRA = "pip install -e '.[ray]'"

Progress = Callable[[int, int | None], None]


class ExecutorError(DistillError):
    """A sweep lost a worker more often than allowed, or Ray is already started here."""


class RayUnavailable(BadInputError):
    """Ray was asked for and is not installed, or its cluster cannot be joined (exit 2)."""


class InProcess:
    """Every item in this process, one after the other (the default)."""

    workers = 1
    description = "in-process"

    def map(
        self,
        function: Callable,
        items: Iterable,
        *,
        progress: Progress | None = None,
        total: int | None = None,
    ) -> Iterator:
        for done, item in enumerate(items, 1):
            result = function(item)
            if progress is not None:
                progress(done, total)
            yield result

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RayExecutor:
    """Items on Ray workers: a local instance of `workers` processes, or the cluster at `address`."""

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        *,
        notify: Callable[[str], None] | None = None,
        max_retries: int = MAX_RETRIES,
        show_logs: bool = False,
    ):
        if (workers is None) == (address is None):
            raise ValueError("give either the number of local workers or a cluster address")
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        ray = import_ray()
        if address is not None:
            _check_reachable(address)
        self.notify = notify or (lambda message: print(message, file=sys.stderr, flush=True))
        self.max_retries = max_retries
        self.retried = 0
        self.owns_ray = False
        if ray.is_initialized():
            raise ExecutorError("Ray is already started in this process")
        quiet = {"log_to_driver": show_logs, "configure_logging": show_logs}
        # No usage statistics are sent, whether Ray starts here or is joined.
        no_statistics = {"RAY_USAGE_STATS_ENABLED": "0"}
        if address is None:
            with _loopback_only(ray), _environment(no_statistics, _worker_path()):
                ray.init(
                    num_cpus=workers,
                    include_dashboard=False,
                    _node_ip_address=LOOPBACK,
                    **quiet,
                )
            bound = ray.nodes()[0]["NodeManagerAddress"]
            if bound != LOOPBACK:
                ray.shutdown()
                raise ExecutorError(f"the local Ray listens on {bound}, not on loopback")
            self.owns_ray = True
            self.workers = workers
            self.description = f"a local Ray with {workers} workers"
        else:
            try:
                with _environment(no_statistics):
                    ray.init(address=address, **quiet)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise RayUnavailable(f"cannot join the Ray cluster at {address}: {error}") from None
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self.description = f"the Ray cluster at {address} ({self.workers} CPUs)"
        self._run = ray.remote(num_cpus=1, max_retries=0)(_run_item)

    def map(
        self,
        function: Callable,
        items: Iterable,
        *,
        progress: Progress | None = None,
        total: int | None = None,
    ) -> Iterator:
        import ray

        shared = [ray.put(function)]  # in a list: the worker fetches it, once per worker
        running: dict = {}  # ref -> (index, item, runs)
        finished: dict = {}  # index -> outcome, until every item before it is yielded
        source = iter(enumerate(items))
        exhausted = False
        turn = 0  # the index yielded next
        limit = IN_FLIGHT_PER_WORKER * self.workers

        def submit(index, item, runs):
            running[self._run.remote(shared, item)] = (index, item, runs)

        try:
            while True:
                # Every worker stays busy while a long item holds up the order: results
                # after it wait here (at most MAX_AHEAD_PER_WORKER per worker).
                while (
                    not exhausted
                    and len(running) < limit
                    and len(finished) < (MAX_AHEAD_PER_WORKER * self.workers)
                ):
                    following = next(source, None)
                    if following is None:
                        exhausted = True
                    else:
                        submit(*following, 1)
                while turn in finished:
                    outcome = finished.pop(turn)
                    turn += 1
                    if isinstance(outcome, _Raised):
                        raise outcome.error
                    yield outcome
                if not running:
                    return
                [ref], _ = ray.wait(list(running), num_returns=1)
                index, item, runs = running.pop(ref)
                try:
                    finished[index] = ray.get(ref)
                except _worker_lost_errors() as error:
                    if runs > self.max_retries:
                        raise ExecutorError(
                            f"item {index} lost its worker {runs} times; the last: "
                            f"{type(error).__name__}"
                        ) from None
                    self.retried += 1
                    self.notify(
                        f"note: a worker died running item {index} ({type(error).__name__}); "
                        f"running it again (run {runs + 1} of {self.max_retries + 1})"
                    )
                    submit(index, item, runs + 1)
                    continue
                except ray.exceptions.RayTaskError as error:
                    # Raised in its turn, after the items before it, as in-process.
                    finished[index] = _Raised(_cause(error))
                if progress is not None:
                    progress(turn + len(finished), total)  # finished so far
        finally:
            # Stopped early, failed or interrupted: nothing keeps running for this sweep.
            for ref in running:
                with contextlib.suppress(Exception):  # finished already, or Ray is gone
                    ray.cancel(ref, force=True)

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()  # for a joined cluster: disconnects, the cluster keeps running

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def _loopback_only(ray):
    """Ray on Linux advertises (and binds its servers to) a routable address unless its
    ENABLE_RAY_CLUSTER is off: off while a local instance starts, it is loopback only (the
    variable is for the processes Ray starts, the constant for this one)."""
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if not hasattr(constants, "ENABLE_RAY_CLUSTER"):
        yield  # another Ray version: the address it binds is checked once it is up
        return
    before = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        with _environment({constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0"}):
            yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before


def _worker_path() -> dict[str, str]:
    """Local workers import what this process imports: its sys.path (the current directory
    for '') as their PYTHONPATH."""
    paths = [os.path.abspath(p or os.curdir) for p in sys.path]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if os.path.isdir(p))}


@contextlib.contextmanager
def _environment(*settings: dict[str, str]):
    """Environment variables set while Ray starts (its processes keep them), then restored."""
    changes = {name: value for setting in settings for name, value in setting.items()}
    before = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


CONNECT_TIMEOUT = 10.0
"""Seconds to reach a cluster's head before the address is refused (Ray itself waits minutes)."""


def _check_reachable(address: str) -> None:
    """A host:port address must accept a connection (ray.init would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        if address == "auto":
            return  # the cluster `ray start` started on this machine
        raise RayUnavailable(f"--ray: expected a cluster address HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise RayUnavailable(
            f"cannot reach the Ray cluster at {address}: {error.strerror or error}"
        ) from None


def import_ray():
    """The ray module, or an error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(
            f"running on Ray needs the optional extra 'ray': {RAY_EXTRA}"
        ) from None
    return ray


def executor(workers: int | None = None, address: str | None = None, **options):
    """InProcess() when neither is given, else a RayExecutor."""
    if workers is None and address is None:
        return InProcess()
    return RayExecutor(workers, address, **options)


_FUNCTIONS: dict[str, Callable] = {}
"""In a worker: the functions of the sweeps it took part in, by object id (the last few)."""


def _run_item(shared: list, item):
    import ray

    key = shared[0].hex()
    function = _FUNCTIONS.get(key)
    if function is None:
        function = ray.get(shared[0])
        while len(_FUNCTIONS) >= 4:
            _FUNCTIONS.pop(next(iter(_FUNCTIONS)))
        _FUNCTIONS[key] = function
    return function(item)


class _Raised:
    """An item's function raised: re-raised when the item's turn comes."""

    def __init__(self, error: BaseException):
        self.error = error


def _worker_lost_errors() -> tuple[type[BaseException], ...]:
    import ray.exceptions as errors

    names = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError")
    return tuple(getattr(errors, name) for name in names if hasattr(errors, name))


def _cause(error) -> BaseException:
    """The exception the function raised (Ray wraps it; its type is the cause's type too)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
