"""One face-classification service per app process: every class's faces are classified in shared batches.

    service = InferenceService.shared(classifier)   # the same service for every caller of this model
    probabilities = service.predict(crops)          # blocks; (len(crops), 7), in the order of `crops`
    future = service.submit(crops, caller="maths-3b")  # or a concurrent.futures.Future of the same
    service.close()                                 # classifies what is queued, then stops

The classifier is several times faster per face in large batches (ONNX Runtime: 210 faces/s at batch 1,
509 at batch 32), so a worker thread gathers the requests of all live classes, recorded videos and the
screen source for at most `max_wait` seconds (or until `max_batch` faces are waiting) and classifies them
in one call. Requests are taken round-robin over callers, not first come first served: a caller with many
requests queued (a recorded video analysed as fast as it can go) gets one request per batch, like everyone
else. That needs per-caller queues, which `queue.Queue` does not have, hence the condition variable.
"""
from __future__ import annotations

import atexit
import collections
import json
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

MAX_WAIT_SECONDS = 0.03
MAX_BATCH = 64


@dataclass
class _Request:
    crops: list
    classifier: object  # the caller's own object of the model (normally the service's)
    future: Future = field(default_factory=Future)


class InferenceService:
    """Batches `classifier.predict` calls from many threads; one worker thread does the predicting."""

    _shared: dict[tuple, "InferenceService"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, classifier, *, max_wait: float = MAX_WAIT_SECONDS, max_batch: int = MAX_BATCH):
        self.classifier, self.max_wait, self.max_batch = classifier, max_wait, max_batch
        self._pending: collections.OrderedDict[object, collections.deque[_Request]] = collections.OrderedDict()
        self._changed = threading.Condition()
        self._closing = False
        self.batches: collections.Counter[int] = collections.Counter()  # faces per batch -> how often
        self._worker = threading.Thread(target=self._run, name="inference", daemon=True)
        self._worker.start()

    @classmethod
    def shared(cls, classifier) -> "InferenceService":
        """The process's service for this model (file, test-time views, calibration, backend), made on first use.
        A model without a file (built in memory) gets a service of its own object."""
        key = (str(classifier.path), classifier.views, json.dumps(classifier.calibration, sort_keys=True),
               classifier.backend) if getattr(classifier, "path", None) else (id(classifier),)
        with cls._shared_lock:
            service = cls._shared.get(key)
            if service is None or service._closing:
                service = cls._shared[key] = cls(classifier)
            return service

    def submit(self, crops, caller: object = None, classifier=None) -> Future:
        """Queue `crops` for the next batch; the Future's result is their (N, 7) probabilities in order.
        `caller` (default: the calling thread) is the unit of fairness; `classifier` (default: the service's)
        is another loaded object of the same model, predicted with its own object (its batch-mates too)."""
        request = _Request(list(crops), classifier or self.classifier)
        if not request.crops:
            request.future.set_result(request.classifier.predict([]))
            return request.future
        with self._changed:
            if self._closing:
                raise RuntimeError("the inference service is closed")
            self._pending.setdefault(threading.get_ident() if caller is None else caller,
                                     collections.deque()).append(request)
            self._changed.notify()
        return request.future

    def predict(self, crops, caller: object = None, classifier=None) -> np.ndarray:
        """Like `classifier.predict(crops)`, batched with the other callers' faces."""
        return self.submit(crops, caller, classifier).result()

    def close(self) -> None:
        """Stop taking requests, classify every queued one, then end the worker."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._worker.join()

    def _waiting_faces(self) -> int:
        return sum(len(r.crops) for queue in self._pending.values() for r in queue)

    def _take_batch(self) -> list[_Request]:
        """Wait for a first request, then up to `max_wait` for more (not while closing: drain at once);
        take requests round-robin over callers up to `max_batch` faces (at least one request)."""
        with self._changed:
            while not self._pending and not self._closing:
                self._changed.wait()
            deadline = time.monotonic() + self.max_wait
            while not self._closing and self._waiting_faces() < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            batch, faces = [], 0
            while self._pending:
                caller, queue = next(iter(self._pending.items()))
                if batch and faces + len(queue[0].crops) > self.max_batch:
                    break
                request = queue.popleft()
                batch.append(request)
                faces += len(request.crops)
                del self._pending[caller]
                if queue:  # the caller's next request goes to the back of the line
                    self._pending[caller] = queue
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:  # closing and nothing left
                return
            self.batches[sum(len(r.crops) for r in batch)] += 1
            for classifier in {id(r.classifier): r.classifier for r in batch}.values():
                self._predict(classifier, [r for r in batch if r.classifier is classifier])

    @staticmethod
    def _predict(classifier, requests: list[_Request]) -> None:
        """One predict call for `requests`; each future gets its own rows, or the error."""
        try:
            probabilities = classifier.predict([crop for r in requests for crop in r.crops])
        except Exception as exc:  # every caller of the batch sees the error, the service goes on
            for request in requests:
                request.future.set_exception(exc)
            return
        sizes = np.cumsum([len(r.crops) for r in requests])[:-1]
        for request, part in zip(requests, np.split(probabilities, sizes)):
            request.future.set_result(part)


@atexit.register
def _close_all() -> None:
    """At exit, the faces already queued are still classified."""
    with InferenceService._shared_lock:
        services = list(InferenceService._shared.values())
    for service in services:
        service.close()
