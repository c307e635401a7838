"""The pass's node cache: fresh free capacity every pass, and any change to a node row seen."""

from __future__ import annotations

import uuid
from collections import namedtuple

from unidesk.core.scheduler.service import _NodeCache

Row = namedtuple(
    "Row",
    "id name labels cpus memory_mb gpus runtimes draining unhealthy_reason host_mounts",
)


def _row(node_id: uuid.UUID, *, labels: str = '{"zone": "a"}', draining: bool = False) -> Row:
    return Row(
        node_id, "n1", labels, 4.0, 8192, '[{"index": 0, "model": "A100"}]', '["docker"]',
        draining, None, "{}",
    )  # fmt: skip


def test_each_pass_gets_its_own_free_capacity() -> None:
    cache = _NodeCache()
    node_id = uuid.uuid4()
    [first] = cache.capacities([_row(node_id)])
    first.free_cpus -= 3
    first.free_memory_mb -= 8000
    first.free_gpu_indices.remove(0)
    [second] = cache.capacities([_row(node_id)])
    assert (second.free_cpus, second.free_memory_mb, second.free_gpu_indices) == (4.0, 8192, [0])
    assert second.gpu_info == {0: ("A100", 0)} and second.labels == {"zone": "a"}


def test_a_changed_node_row_is_read_again() -> None:
    cache = _NodeCache()
    node_id = uuid.uuid4()
    [before] = cache.capacities([_row(node_id)])
    assert before.accepts_work and before.labels == {"zone": "a"}
    [after] = cache.capacities([_row(node_id, labels='{"zone": "b"}', draining=True)])
    assert not after.accepts_work and after.labels == {"zone": "b"}
    assert cache.capacities([]) == [] and cache._by_row == {}  # only the latest rows are kept
