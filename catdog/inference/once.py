"""Values made once per key, however many sessions ask at the same time.

The dashboard serves many sessions from one process, as threads. Models, evaluations and TFLite
conversions are therefore kept per saved model version and made once: the first caller does the
work while the others wait for its result.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class OncePerKey:
    """Values made once per key, however many threads ask at the same time: the first caller
    makes the value while the others wait for it. The `size` most recently used are kept."""

    def __init__(self, size: int):
        self._size = size
        self._values: OrderedDict[Hashable, object] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            key_lock = self._making.setdefault(key, threading.Lock())
        with key_lock:
            try:
                with self._lock:
                    if key in self._values:
                        return self._values[key]
                value = make()
                with self._lock:
                    self._values[key] = value
                    while len(self._values) > self._size:
                        self._values.popitem(last=False)
                return value
            finally:
                with self._lock:
                    if self._making.get(key) is key_lock:
                        del self._making[key]
