"""The batching engine behind `emu-video serve`: a queue of requests, one worker thread, results.

The worker takes up to `batch_size` queued requests with the same settings (after at most
`max_wait_ms` from the oldest), pads the batch to its fixed size so one compiled `Pipeline` per
settings is reused, and stores each result. Request i's video equals `emu-video sample --prompt P
--seed S` (its noise comes from (S, 0)). `drain()` refuses new work, lets the batch in flight
finish and fails what is queued; `wait_collected` then lets that batch's clients fetch their videos.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import uuid
from typing import Any

from emu_jax.errors import UserError
from emu_jax.sampling.progress import Progress
from emu_jax.sampling.settings import Settings, check_overrides, check_seed

FIELDS = {"prompt", "seed", "steps", "guidance", "negative_prompt"}
GUIDANCE = {"keyframe": "guidance_keyframe", "image": "guidance_image", "text": "guidance_text"}


@dataclasses.dataclass
class Job:
    id: str
    prompt: str
    seed: int
    overrides: dict
    negative_prompt: str | None
    warnings: list
    status: str = "queued"
    progress: dict = dataclasses.field(default_factory=dict)
    error: str | None = None
    created: float = dataclasses.field(default_factory=time.time)
    finished: float | None = None
    result: Any = None  # the Sample
    collected: bool = False  # its video downloaded (or, failed, its error read): a draining server may stop

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.overrides.items())), self.negative_prompt

    def view(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "prompt": self.prompt,
            "seed": self.seed,
            "progress": self.progress,
            "warnings": self.warnings,
            "error": self.error,
        }


class _JobProgress(Progress):
    """Stage / step of the batch in flight, copied onto its jobs."""

    def __init__(self):
        super().__init__(enabled=False)
        self.jobs: list[Job] = []

    def report(self, label: str, done: int, total: int, elapsed: float) -> None:
        for j in self.jobs:
            j.progress = {"stage": label.split()[-1], "step": done, "steps": total}


class Engine:
    """The queue, the batching worker, the compiled pipelines (one per settings) and the results."""

    def __init__(
        self,
        checkpoint: str,
        *,
        batch_size: int = 4,
        max_wait_ms: float = 200,
        queue_size: int = 64,
        keep_results: int = 256,
        keep_seconds: float = 3600,
        max_steps: int = 100,
        max_guidance: float = 20.0,
        max_prompt_chars: int = 500,
        use_interp: bool = True,
        max_pipelines: int = 4,
    ):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        from emu_jax.sampling import loading

        self.main = loading.load_model(checkpoint)
        ipath = loading.find_interp_checkpoint(checkpoint, None) if use_interp else None
        self.interp = loading.load_model(ipath) if ipath else None
        self.batch_size, self.max_wait = batch_size, max_wait_ms / 1000
        self.queue_size, self.keep_results, self.keep_seconds = queue_size, keep_results, keep_seconds
        self.max_steps, self.max_guidance, self.max_prompt_chars = max_steps, max_guidance, max_prompt_chars
        self.max_pipelines = max_pipelines
        self.defaults = Settings.from_dict(self.main.meta.get("sampling"))
        self.queue: collections.deque[Job] = collections.deque()
        self.jobs: dict[str, Job] = {}
        self.pipes: collections.OrderedDict = collections.OrderedDict()
        self.cond = threading.Condition()
        self.draining = False
        self.in_flight: list[Job] = []  # the batch running when drain() was called
        self.progress = _JobProgress()
        self.registry = CollectorRegistry()
        self.m_requests = Counter("emu_requests", "requests by outcome", ["outcome"], registry=self.registry)
        self.m_batches = Counter("emu_batches", "batches run (compiled pipeline calls)", registry=self.registry)
        self.m_fill = Histogram(
            "emu_batch_fill", "real requests / batch size", registry=self.registry, buckets=(0.25, 0.5, 0.75, 1.0)
        )
        self.m_queue = Gauge("emu_queue_depth", "requests waiting", registry=self.registry)
        self.worker = threading.Thread(target=self._loop, name="emu-batcher", daemon=True)
        self.worker.start()

    # ---- requests ------------------------------------------------------------------------------
    def parse(self, body: Any) -> Job:
        """A Job from a request body, or UserError with the one-line reason (-> 400)."""
        if not isinstance(body, dict):
            raise UserError("the body must be a JSON object")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise UserError(f"unknown field(s) {unknown}; allowed: {sorted(FIELDS)}")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("prompt must be a non-empty string")
        if len(prompt) > self.max_prompt_chars:
            raise UserError(f"prompt has {len(prompt)} characters; at most {self.max_prompt_chars} allowed")
        seed = check_seed(body.get("seed", 0))
        guidance = body.get("guidance", {})
        if not isinstance(guidance, dict) or set(guidance) - set(GUIDANCE):
            raise UserError(f"guidance must be an object with keys from {sorted(GUIDANCE)}")
        overrides = {"num_steps": body.get("steps"), **{GUIDANCE[k]: v for k, v in guidance.items()}}
        labels = {"num_steps": "steps", **{v: f"guidance.{k}" for k, v in GUIDANCE.items()}}
        check_overrides(overrides, labels)
        steps = overrides["num_steps"]
        if steps is not None and steps > self.max_steps:
            raise UserError(f"steps must be in [1, {self.max_steps}], got {steps}")
        for k, v in guidance.items():
            if v > self.max_guidance:
                raise UserError(f"guidance.{k} must be in [0, {self.max_guidance}], got {v}")
        neg = body.get("negative_prompt")
        if neg is not None and (not isinstance(neg, str) or len(neg) > self.max_prompt_chars):
            raise UserError(f"negative_prompt must be a string of at most {self.max_prompt_chars} characters")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        Settings.from_dict(self.main.meta.get("sampling"), **overrides).validate(
            self.main.schedule, self.main.prediction
        )
        from emu_jax.sampling.cli import prompt_warnings

        warned = prompt_warnings(self.main.model, [prompt])[0]
        return Job(uuid.uuid4().hex[:12], prompt, seed, overrides, neg or None, warned)

    def submit(self, job: Job) -> bool:
        """Queue `job`; False when the queue is full or the server is draining."""
        with self.cond:
            self._prune()
            if self.draining or len(self.queue) >= self.queue_size:
                return False
            self.queue.append(job)
            self.jobs[job.id] = job
            self.m_queue.set(len(self.queue))
            self.cond.notify_all()
        return True

    def _prune(self) -> None:
        """Forget finished jobs beyond `keep_results` or older than `keep_seconds` (caller holds the lock)."""
        done = sorted((j for j in self.jobs.values() if j.finished is not None), key=lambda j: j.finished)
        now = time.time()
        for i, j in enumerate(done):
            if len(done) - i > self.keep_results or now - j.finished > self.keep_seconds:
                del self.jobs[j.id]

    def get(self, job_id: str) -> Job | None:
        with self.cond:
            self._prune()
            return self.jobs.get(job_id)

    # ---- the worker ----------------------------------------------------------------------------
    def _take(self) -> list[Job]:
        """Wait for work, then up to batch_size jobs sharing the oldest job's settings."""
        with self.cond:
            while not self.queue or self.draining:
                if self.draining:  # the batch in flight has finished; what still waits is refused
                    for j in self.queue:
                        j.status, j.error, j.finished = "error", "server shut down before this request ran", time.time()
                    self.queue.clear()
                    self.m_queue.set(0)
                    return []
                self.cond.wait(0.5)
            deadline = self.queue[0].created + self.max_wait
            key = self.queue[0].key
            while (
                sum(j.key == key for j in self.queue) < self.batch_size and time.time() < deadline and not self.draining
            ):
                self.cond.wait(max(0.0, deadline - time.time()))
            if self.draining:  # a batch still filling is not in flight: refused like the rest of the queue
                return self._take()
            batch = [j for j in self.queue if j.key == key][: self.batch_size]
            for j in batch:
                self.queue.remove(j)
                j.status = "running"
            self.m_queue.set(len(self.queue))
            return batch

    def _pipeline(self, job: Job):
        from emu_jax.sampling.pipeline import Pipeline

        if job.key not in self.pipes:
            if len(self.pipes) >= self.max_pipelines:
                self.pipes.popitem(last=False)
            settings = Settings.from_dict(self.main.meta.get("sampling"), **job.overrides)
            isettings = self.interp and Settings.from_dict(self.interp.meta.get("sampling"), **job.overrides)
            self.pipes[job.key] = Pipeline(
                self.main,
                settings,
                interp=self.interp,
                interp_settings=isettings,
                batch_size=self.batch_size,
                negative_prompt=job.negative_prompt,
                progress=self.progress,
            )
        self.pipes.move_to_end(job.key)
        return self.pipes[job.key]

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            self.progress.jobs = batch
            try:
                pipe = self._pipeline(batch[0])
                samples = pipe.run_batch([j.prompt for j in batch], [0] * len(batch), [j.seed for j in batch])
                self.m_batches.inc()
                self.m_fill.observe(len(batch) / pipe.local_batch)
                for j, s in zip(batch, samples):
                    j.result, j.status = s, "done"
                    self.m_requests.labels("done").inc()
            except Exception as e:  # noqa: BLE001 - one bad batch must not stop the server
                for j in batch:
                    j.status, j.error = "error", f"{type(e).__name__}: {e}".splitlines()[0]
                    self.m_requests.labels("error").inc()
            with self.cond:
                for j in batch:
                    j.finished = time.time()
                self.cond.notify_all()

    def drain(self) -> None:
        """Refuse new work; the worker finishes the batch in flight, fails what is queued, and stops."""
        with self.cond:
            self.draining = True
            self.in_flight = [j for j in self.jobs.values() if j.status == "running"]
            self.cond.notify_all()

    def collect(self, job: Job) -> None:
        """Note that `job`'s outcome reached its client (see `wait_collected`)."""
        with self.cond:
            job.collected = True
            self.cond.notify_all()

    def wait_collected(self, timeout: float) -> bool:
        """After a drain: wait up to `timeout` s for the in-flight batch's clients to fetch their results."""
        with self.cond:
            return self.cond.wait_for(lambda: all(j.collected for j in self.in_flight), timeout)
