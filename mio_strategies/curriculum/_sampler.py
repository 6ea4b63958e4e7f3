"""`SequentialCurriculumSampler`: dataset indices for a whole curriculum run, generated on the fly."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import Sampler

from mio_strategies.curriculum._schedule import Curriculum
from mio_strategies.tasks import NUM_TASKS, TASKS, UnknownTaskError
from mio_strategies.utils.validation import int_in_range, is_int, positive_int

# Bump when the way indices are generated from (seed, iteration) changes: a state dict written by
# another scheme would not reproduce its stream, so it is refused.
_SCHEME = 1
# Iterations are drawn in chunks of about this many indices, from a generator seeded by (seed, chunk).
_CHUNK_INDICES = 2048
_MASK64 = (1 << 64) - 1
_BALANCES = ("tasks", "samples")


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _chunk_seed(seed: int, chunk: int) -> int:
    return _splitmix64(_splitmix64(seed) ^ chunk) & ((1 << 63) - 1)


def coerce_task_ids(task_ids: Any) -> torch.Tensor:
    """Per-index task ids as a 1-D int64 CPU tensor, from a tensor, array, sequence or dataset.

    Raises:
        TypeError: not integers, or not a sequence / dataset with ``.task_ids``.
        ValueError: not 1-D, or empty.
        UnknownTaskError: ids outside ``0..6``.
    """
    source = task_ids
    if hasattr(task_ids, "task_ids") and not isinstance(task_ids, (torch.Tensor, list, tuple)):
        task_ids = task_ids.task_ids
    elif isinstance(task_ids, torch.utils.data.Dataset):  # would be read item by item as if items were ids
        raise TypeError(
            f"the dataset ({type(source).__name__}) has no .task_ids: give the sampler the task id of every index "
            "(a list or tensor), or give the dataset a task_ids attribute (MiODataset and the paired folder "
            "datasets have one)"
        )
    if isinstance(task_ids, torch.Tensor):
        ids = task_ids.detach().to("cpu")
    else:
        try:
            ids = torch.as_tensor(task_ids)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(
                f"task_ids must be a 1-D sequence of int task ids (or a dataset with .task_ids), got "
                f"{type(source).__name__}: {exc}"
            ) from exc
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"task_ids must hold integer task ids 0..{NUM_TASKS - 1}, got dtype {ids.dtype}")
    if ids.dim() != 1:
        raise ValueError(f"task_ids must be 1-D (one task id per dataset index), got shape {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError("the dataset is empty (task_ids has no elements): a sampler needs at least one index")
    ids = ids.to(torch.int64)
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= NUM_TASKS:
        bad = sorted({v for v in (lo, hi) if not 0 <= v < NUM_TASKS})
        raise UnknownTaskError(
            f"task_ids contain unknown task ids {bad}: valid ids are 0..{NUM_TASKS - 1} "
            f"({', '.join(f'{t.id}={t.letter}' for t in TASKS)})"
        )
    return ids


def _checksum(ids: torch.Tensor, block: int = 1 << 20) -> int:
    """A position-sensitive checksum of the task ids (detects a reordered dataset), in bounded memory."""
    total = 0
    for start in range(0, ids.numel(), block):
        part = ids[start : start + block] + 1
        weight = torch.arange(start, start + part.numel()) % 65521 + 1
        total += int((part * weight).sum())
    return total


def _dist_defaults(rank: int | None, world_size: int | None) -> tuple[int, int]:
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if world_size is None:
        world_size = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    int_in_range("rank", rank, type_error=True)
    world_size = int_in_range("world_size", world_size, 1, type_error=True)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1} for world_size={world_size}, got {rank}")
    return rank, world_size


class SequentialCurriculumSampler(Sampler[int]):
    """Dataset indices for a whole curriculum run: each batch draws only from the tasks active at its iteration.

    Use it as ``DataLoader(dataset, batch_size=batch_size, sampler=s, drop_last=True)`` (or pass
    :meth:`batch_sampler` as ``batch_sampler=``): the loader then yields ``curriculum.total_iterations``
    batches, and batch ``t`` holds only tasks active at iteration ``t``.

    How indices are drawn. Iteration ``t`` has a global batch of ``batch_size * world_size`` slots, shared
    by all ranks (rank ``r`` takes slots ``r*B .. r*B + B - 1``). With ``balance="tasks"`` the slots cycle
    over the active tasks from a random offset, so every active task gets ``floor`` or ``ceil`` of
    ``slots / active`` (exactly balanced per global batch, the remainder going to a random run of
    tasks); each slot then takes a uniformly random sample of its task. With ``balance="samples"`` every
    slot is uniform over all samples of the active tasks. Within a global batch no index repeats
    (duplicates are redrawn), so ranks always draw disjoint indices. Draws come from a
    ``torch.Generator`` seeded from ``(seed, chunk)`` for chunks of consecutive iterations, so the run is
    never materialised: memory is the dataset's grouping by task (4 bytes per item) plus one chunk.

    Iterating continues from the current position and runs to the end of the run; the position advances
    as indices are yielded. :meth:`state_dict` / :meth:`load_state_dict` (or :meth:`set_iteration`)
    resume anywhere, reproducing exactly the stream of the uninterrupted run. With DataLoader workers,
    the sampler runs ahead of training by the prefetched batches: pass the training loop's iteration
    to ``state_dict(iteration=...)``.

    Args:
        task_ids: per-index task ids (1-D tensor, array or sequence of ints 0..6), or a dataset with
            ``.task_ids``.
        curriculum: the :class:`Curriculum` (``Curriculum.mixed(...)`` for the mixed baseline).
        batch_size: batch size per rank (the DataLoader's ``batch_size``).
        seed: the stream's seed (same seed, same stream on every machine).
        balance: ``"tasks"`` (uniform over active tasks, the default) or ``"samples"`` (uniform over the
            samples of the active tasks).
        rank: this process's shard; default from ``torch.distributed`` when it is initialised, else ``0``.
        world_size: the number of shards; default from ``torch.distributed`` when it is initialised,
            else ``1``.

    Raises:
        TypeError: a wrong argument type.
        ValueError: an empty dataset; tasks of the curriculum missing from the dataset or dataset tasks
            missing from the curriculum; non-positive batch size; a bad rank; a task too small to fill
            its share of a global batch without repeating an index.
        UnknownTaskError: task ids outside ``0..6``.

    Example:
        >>> import torch
        >>> from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
        >>> ids = torch.arange(70) % 7                      # 10 samples per task
        >>> c = Curriculum("SBNJRHL", periods=10, iterations_per_period=3)
        >>> s = SequentialCurriculumSampler(ids, c, batch_size=4, seed=0)
        >>> len(s) == c.total_iterations * 4
        True
        >>> first_batch = [next(it) for it in [iter(s)] for _ in range(4)]
        >>> sorted({int(ids[i]) for i in first_batch})     # period 1 trains task S (id 0) only
        [0]
    """

    def __init__(
        self,
        task_ids: Any,
        curriculum: Curriculum,
        batch_size: int,
        *,
        seed: int = 0,
        balance: str = "tasks",
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not isinstance(curriculum, Curriculum):
            raise TypeError(
                f"curriculum must be a Curriculum (e.g. Curriculum('SBNJRHL', periods=10, iterations_per_period=...)), "
                f"got {type(curriculum).__name__}"
            )
        positive_int("batch_size", batch_size, type_error=True)
        int_in_range("seed", seed, type_error=True)
        if not 0 <= seed <= _MASK64:
            raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
        if balance not in _BALANCES:
            raise ValueError(f"balance must be one of {_BALANCES}, got {balance!r}")
        rank, world_size = _dist_defaults(rank, world_size)
        ids = coerce_task_ids(task_ids)

        order = [t.id for t in curriculum.tasks]
        counts_by_id = torch.bincount(ids, minlength=NUM_TASKS).tolist()
        present = {i for i, c in enumerate(counts_by_id) if c > 0}
        missing = [TASKS[i].name for i in order if i not in present]
        if missing:
            raise ValueError(
                f"curriculum {curriculum.spec!r} needs tasks {missing} that the dataset does not contain "
                f"(dataset tasks: {[TASKS[i].name for i in sorted(present)]}): drop them from the order or "
                "add their samples"
            )
        extra = [TASKS[i].name for i in sorted(present - set(order))]
        if extra:
            raise ValueError(
                f"the dataset contains tasks {extra} that curriculum {curriculum.spec!r} never trains: add them "
                "to the order or remove their samples from the dataset"
            )

        global_batch = batch_size * world_size
        counts = [counts_by_id[i] for i in order]
        active = curriculum.active_counts()
        for period, n in enumerate(active):
            if balance == "tasks":
                need = -(-global_batch // n)
                small = [(TASKS[order[k]].name, counts[k]) for k in range(n) if counts[k] < need]
                if small:
                    name, have = small[0]
                    raise ValueError(
                        f"task {name!r} has {have} samples but period {period + 1} draws up to {need} of them per "
                        f"global batch (batch_size {batch_size} x world_size {world_size} over {n} active tasks); "
                        "indices never repeat within a global batch, so lower batch_size or add samples"
                    )
            elif sum(counts[:n]) < global_batch:
                raise ValueError(
                    f"period {period + 1} has {sum(counts[:n])} samples of active tasks, fewer than the global batch "
                    f"of {global_batch} (batch_size {batch_size} x world_size {world_size}); indices never repeat "
                    "within a global batch, so lower batch_size or add samples"
                )

        # Dataset indices grouped by task in curriculum order: the active pool is always a prefix.
        index_dtype = torch.int32 if ids.numel() < 2**31 else torch.int64
        self._grouped = torch.cat([torch.nonzero(ids == i).flatten().to(index_dtype) for i in order])
        self._counts = torch.tensor(counts, dtype=torch.int64)
        self._offsets = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()], dtype=torch.int64)
        self._active = torch.tensor(active, dtype=torch.int64)
        self._fingerprint = {
            "num_items": int(ids.numel()),
            "task_counts": {TASKS[i].letter: counts_by_id[i] for i in order},
            "checksum": _checksum(ids),
        }

        self.curriculum = curriculum
        self.batch_size = batch_size
        self.seed = seed
        self.balance = balance
        self.rank = rank
        self.world_size = world_size
        self._global_batch = global_batch
        self._chunk_iters = max(1, _CHUNK_INDICES // global_batch)
        self._end = curriculum.total_iterations * batch_size
        self._position = 0
        self._live: tuple[int, Any, int] | None = None  # (end position of chunk, list iterator, items per entry)
        self._generator = torch.Generator()

    # ----------------------------------------------------------------- generation
    def _chunk(self, chunk: int) -> torch.Tensor:
        """Global batches (rows: iterations, columns: slots of all ranks) of one chunk, as dataset indices."""
        # torch.take rather than advanced indexing: several times faster on small index tensors.
        total = self.curriculum.total_iterations
        t0 = chunk * self._chunk_iters
        rows = min(self._chunk_iters, total - t0)
        g = self._generator
        g.manual_seed(_chunk_seed(self.seed, chunk))
        period = torch.arange(t0, t0 + rows) // self.curriculum.iterations_per_period
        n = torch.take(self._active, period).unsqueeze(1)  # (rows, 1) active tasks per iteration
        G = self._global_batch
        if self.balance == "tasks":
            offset = (torch.rand(rows, 1, generator=g, dtype=torch.float64) * n).long()
            offset = torch.minimum(offset, n - 1)
            task = (torch.arange(G).unsqueeze(0) + offset) % n  # position of the slot's task in the order
            size, base = torch.take(self._counts, task), torch.take(self._offsets, task)
        else:
            size = torch.take(self._offsets, n).expand(rows, G)
            base = torch.zeros_like(size)
        pos = base + torch.minimum((torch.rand(rows, G, generator=g, dtype=torch.float64) * size).long(), size - 1)
        while G > 1:
            dup = self._duplicates(pos)
            if not bool(dup.any()):
                break
            s, b = size[dup], base[dup]
            redraw = (torch.rand(s.numel(), generator=g, dtype=torch.float64) * s).long()
            pos[dup] = b + torch.minimum(redraw, s - 1)
        return torch.take(self._grouped, pos).long()

    @staticmethod
    def _duplicates(pos: torch.Tensor) -> torch.Tensor:
        """Mask of slots whose value already occurs earlier in their row (the first occurrence is kept)."""
        # A row-wise sort: boolean reductions along a dim (any/sum) are pathologically slow when torch
        # runs several threads on a busy machine; sort and comparisons are not.
        ordered, perm = pos.sort(dim=1, stable=True)
        later = torch.zeros_like(pos, dtype=torch.bool)
        later[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        return torch.zeros_like(later).scatter_(1, perm, later)

    def _rank_rows(self, chunk: int) -> torch.Tensor:
        B = self.batch_size
        return self._chunk(chunk)[:, self.rank * B : (self.rank + 1) * B]

    def indices(self, start_iteration: int = 0, stop_iteration: int | None = None) -> Iterator[int]:
        """This rank's indices for iterations ``start_iteration <= t < stop_iteration`` (stateless).

        Example:
            >>> import torch
            >>> c = Curriculum("SB", periods=2, iterations_per_period=2)
            >>> s = SequentialCurriculumSampler(torch.tensor([0, 0, 1, 1]), c, batch_size=2)
            >>> list(s.indices(1, 3)) == list(s)[2:6]
            True
        """
        total = self.curriculum.total_iterations
        stop = total if stop_iteration is None else stop_iteration
        if not 0 <= start_iteration <= stop <= total:
            raise ValueError(f"need 0 <= start_iteration <= stop_iteration <= {total}, got {start_iteration}, {stop}")
        return self._generate(start_iteration * self.batch_size, stop * self.batch_size, batched=False, track=False)

    def _generate(self, start: int, stop: int, *, batched: bool, track: bool) -> Iterator[Any]:
        """Yield this rank's indices (or batches) for positions ``start..stop`` (in indices)."""
        B = self.batch_size
        per_chunk = self._chunk_iters * B
        pos = start
        while pos < stop:
            chunk = pos // per_chunk
            rows = self._rank_rows(chunk)
            chunk_start = chunk * per_chunk
            lo, hi = pos - chunk_start, min(stop, chunk_start + rows.numel()) - chunk_start
            if batched:
                values = rows[lo // B : hi // B].tolist()
            else:
                values = rows.flatten()[lo:hi].tolist()
            it = iter(values)
            if track:
                self._live = (chunk_start + hi, it, B if batched else 1)
            yield from it
            pos = chunk_start + hi
            if track:
                self._position = pos
                self._live = None

    # ----------------------------------------------------------------- Sampler protocol
    def __iter__(self) -> Iterator[int]:
        self._sync_position()
        return self._generate(self._position, self._end, batched=False, track=True)

    def __len__(self) -> int:
        """Indices left from the current position to the end of the run (the whole run when fresh)."""
        return self._end - self.position

    def batch_sampler(self) -> _CurriculumBatchSampler:
        """A batch-sampler view (lists of ``batch_size`` indices, one per iteration) sharing this position.

        Use as ``DataLoader(dataset, batch_sampler=s.batch_sampler())``.
        """
        return _CurriculumBatchSampler(self)

    # ----------------------------------------------------------------- position and state
    def _sync_position(self) -> None:
        if self._live is not None:
            end, it, per = self._live
            self._position = end - per * operator.length_hint(it)

    @property
    def position(self) -> int:
        """Indices this rank has yielded since the start of the run."""
        self._sync_position()
        return self._position

    @property
    def iteration(self) -> int:
        """The iteration the next index belongs to (``position // batch_size``)."""
        return self.position // self.batch_size

    def set_iteration(self, iteration: int) -> None:
        """Continue from the start of ``iteration`` (0-based; ``total_iterations`` means the run is over).

        Raises:
            ValueError: iteration outside ``0..total_iterations``.
        """
        total = self.curriculum.total_iterations
        int_in_range("iteration", iteration, 0, total)
        self._live = None
        self._position = iteration * self.batch_size

    def _config(self) -> dict[str, Any]:
        return {
            "scheme": _SCHEME,
            "curriculum": self.curriculum.to_dict(),
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "seed": self.seed,
            "balance": self.balance,
            "dataset": self._fingerprint,
        }

    def state_dict(self, iteration: int | None = None) -> dict[str, Any]:
        """The position and the configuration it belongs to.

        Args:
            iteration: the training loop's next iteration, when it differs from the sampler's position
                (DataLoader workers prefetch ahead). Default: the sampler's own position.

        Returns:
            ``{"position": int, "config": {...}}``, plain Python values (safe for ``torch.save`` and JSON).
            Every rank has the same position at the same iteration, so rank 0's state resumes all ranks.
        """
        if iteration is None:
            position = self.position
        else:
            total = self.curriculum.total_iterations
            int_in_range("iteration", iteration, 0, total)
            position = iteration * self.batch_size
        return {"position": position, "config": self._config()}

    def load_state_dict(self, state: Mapping[str, Any], *, extend: bool = False) -> None:
        """Resume from :meth:`state_dict`; the next index is the one the uninterrupted run yields there.

        Args:
            state: a dict returned by :meth:`state_dict`.
            extend: also accept the state of a run of the same curriculum over *fewer* periods (same
                stages and iterations per period, every other setting equal), finished or not, and
                continue it into this sampler's longer schedule. Stages enter at the same periods, so
                the shorter run's schedule is a prefix of this one; from the saved position on, the
                indices are those this sampler yields there. Iterations are drawn in chunks of
                ``2048 // (batch_size * world_size)``, and the saved run drew its last, partial chunk
                for its own end: when its length is not a multiple of the chunk, the draws of those
                last iterations before the saved end differ from a run of the longer schedule from the
                start (every draw after the saved end is the same).

        Raises:
            KeyError: the state lacks ``position`` or ``config``.
            ValueError: the state comes from a different configuration (the message lists every
                difference; with ``extend``, a longer curriculum is one), or its position is outside
                the run.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping from state_dict(), got {type(state).__name__}")
        missing = [k for k in ("position", "config") if k not in state]
        if missing:
            raise KeyError(f"sampler state lacks keys {missing}: pass the dict returned by state_dict()")
        mine, theirs = self._config(), state["config"]
        end = self._end
        if extend and isinstance(theirs, Mapping) and isinstance(theirs.get("curriculum"), Mapping):
            saved_c, my_c = theirs["curriculum"], mine["curriculum"]
            shorter = {**saved_c, "periods": my_c["periods"]} == my_c and is_int(saved_c.get("periods")) \
                and 1 <= saved_c["periods"] <= my_c["periods"]
            if shorter:  # compared as this curriculum; the position is checked against the saved run's end below
                theirs = {**theirs, "curriculum": my_c}
                end = saved_c["periods"] * saved_c["iterations_per_period"] * self.batch_size
        diffs = [
            f"{k}: saved {theirs.get(k, '<missing>')!r}, here {mine[k]!r}"
            for k in mine
            if not isinstance(theirs, Mapping) or theirs.get(k) != mine[k]
        ]
        if diffs:
            raise ValueError(
                "sampler state comes from a different configuration, so it would not reproduce its stream: "
                + "; ".join(diffs)
                + ". Build the sampler with the saved settings, or start a fresh run"
                + (" (extend continues only the same curriculum over fewer periods)" if extend else "")
            )
        position = state["position"]
        int_in_range("state position", position, 0, end)
        self._live = None
        self._position = position

    def __repr__(self) -> str:
        return (
            f"SequentialCurriculumSampler({self.curriculum!r}, batch_size={self.batch_size}, seed={self.seed}, "
            f"balance={self.balance!r}, rank={self.rank}, world_size={self.world_size}, "
            f"items={self._fingerprint['num_items']}, position={self.position})"
        )


class _CurriculumBatchSampler(Sampler[list[int]]):
    """Batches (one list per iteration) of a :class:`SequentialCurriculumSampler`, sharing its position."""

    def __init__(self, sampler: SequentialCurriculumSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        s = self.sampler
        s._sync_position()
        start = s._position
        if start % s.batch_size:
            raise ValueError(
                f"the sampler stands mid-batch (position {start}, batch_size {s.batch_size}): a batch sampler "
                "resumes at iteration starts; use set_iteration()"
            )
        return s._generate(start, s._end, batched=True, track=True)

    def __len__(self) -> int:
        return len(self.sampler) // self.sampler.batch_size
