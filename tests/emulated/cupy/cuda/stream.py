"""cupy.cuda.stream: Stream (a context manager; CUDA-graph capture) and Graph (replays)."""

from __future__ import annotations

from cupy import _emulation
from cupy._emulation import CUDARuntimeError


class Stream:
    null = None  # set below

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptr = 0 if null else id(self)
        self.device_id = _emulation.current_device()
        self._null, self._capturing, self._nodes, self._capture_error = null, False, [], None
        _emulation.register_stream(self)

    def __enter__(self):
        if not self._null and self.device_id != _emulation.current_device():  # CuPy's check_stream_device_match
            raise RuntimeError(
                f"the current device {_emulation.current_device()} does not match the stream's device {self.device_id}"
            )
        _emulation.stream_stack().append(self)
        return self

    def __exit__(self, *exc):
        _emulation.stream_stack().pop()

    def use(self):
        stack = _emulation.stream_stack()
        if stack:
            stack[-1] = self
        else:
            stack.append(self)
        return self

    def synchronize(self) -> None:
        if self._capturing:
            self._capture_error = self._capture_error or "synchronize"
            raise CUDARuntimeError("cudaErrorStreamCaptureUnsupported: synchronize of a capturing stream")
        _emulation.host_sync("Stream.synchronize()")

    def begin_capture(self, mode=None) -> None:
        if self._null:
            raise CUDARuntimeError(
                "cudaErrorStreamCaptureUnsupported: operation not permitted "
                "when stream is capturing (the legacy null stream cannot capture)"
            )
        if self._capturing:
            raise CUDARuntimeError("cudaErrorIllegalState: the stream is already capturing")
        self._capturing, self._nodes, self._capture_error = True, [], None

    def is_capturing(self) -> bool:
        return self._capturing

    def end_capture(self):
        if not self._capturing:
            raise CUDARuntimeError("cudaErrorIllegalState: the stream is not capturing")
        self._capturing = False
        nodes, self._nodes = self._nodes, []
        if self._capture_error:
            raise CUDARuntimeError(
                f"cudaErrorStreamCaptureInvalidated: the capture was invalidated ({self._capture_error})"
            )
        return Graph(nodes)

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return hash(self.ptr)

    def __repr__(self):
        return f"<Stream {self.ptr} (device {self.device_id})>"


class ExternalStream(Stream):
    def __init__(self, ptr, device_id=-1):
        super().__init__(null=ptr == 0)
        self.ptr = ptr
        _emulation.register_stream(self)


Stream.null = Stream(null=True)
_emulation.null_stream = Stream.null


def get_current_stream(device_id=None) -> Stream:
    return _emulation.current_stream()


class Graph:
    """The work recorded by a capture; each launch() runs it again (array operands are read
    then, scalars were baked in at capture)."""

    def __init__(self, nodes):
        self._nodes = list(nodes)

    def upload(self, stream=None) -> None:
        pass

    def launch(self, stream=None) -> None:
        _emulation.counters.graph_launches += 1
        for kind, fn in self._nodes:
            _emulation.tally(kind)
            fn()
