"""Field tables for every message the shim reads or writes (see ttrpc/wire.py; ttrpc's own
envelope is in ttrpc/__init__.py).

Names and numbers are containerd's: containerd.task.v2 (the shim API,
protos/containerd_api/runtime/task/v2/shim.proto), containerd.events task events,
containerd.runc.v1.ProcessDetails and io.containerd.cgroups.v1 and v2 Metrics; plus the shim's
own event queue service (protos/containerd_api/runtime/task/v2/events.proto).
"""

from __future__ import annotations

from ttrpc import KEY_VALUE
from ttrpc.wire import ANY, BOOL, MESSAGE, STRING, TIMESTAMP, UINT

# --- containerd.types / containerd.v1.types -----------------------------------------------
MOUNT = ((1, "type", STRING), (2, "source", STRING), (3, "target", STRING), (4, "options", [STRING]))
PROCESS_INFO = ((1, "pid", UINT), (2, "info", MESSAGE, ANY))
PROCESS_DETAILS = ((1, "exec_id", STRING),)  # containerd.runc.v1.ProcessDetails

# containerd.v1.types.Status
STATUS_UNKNOWN, STATUS_CREATED, STATUS_RUNNING, STATUS_STOPPED, STATUS_PAUSED, STATUS_PAUSING = range(6)

# --- containerd.task.v2 ----------------------------------------------------------------------
_ID = (1, "id", STRING)
_EXEC_ID = (2, "exec_id", STRING)
CREATE_TASK_REQUEST = (
    _ID,
    (2, "bundle", STRING),
    (3, "rootfs", [MESSAGE], MOUNT),
    (4, "terminal", BOOL),
    (5, "stdin", STRING),
    (6, "stdout", STRING),
    (7, "stderr", STRING),
    (8, "checkpoint", STRING),
    (9, "parent_checkpoint", STRING),
    (10, "options", MESSAGE, ANY),
)
PID_RESPONSE = ((1, "pid", UINT),)  # CreateTaskResponse, StartResponse
ID_EXEC_REQUEST = (_ID, _EXEC_ID)  # DeleteRequest, StateRequest, StartRequest, WaitRequest
ID_REQUEST = (_ID,)  # PidsRequest, StatsRequest, ConnectRequest, PauseRequest, ResumeRequest
DELETE_RESPONSE = ((1, "pid", UINT), (2, "exit_status", UINT), (3, "exited_at", MESSAGE, TIMESTAMP))
EXEC_PROCESS_REQUEST = (
    _ID,
    _EXEC_ID,
    (3, "terminal", BOOL),
    (4, "stdin", STRING),
    (5, "stdout", STRING),
    (6, "stderr", STRING),
    (7, "spec", MESSAGE, ANY),
)
RESIZE_PTY_REQUEST = (_ID, _EXEC_ID, (3, "width", UINT), (4, "height", UINT))
STATE_RESPONSE = (
    _ID,
    (2, "bundle", STRING),
    (3, "pid", UINT),
    (4, "status", UINT),
    (5, "stdin", STRING),
    (6, "stdout", STRING),
    (7, "stderr", STRING),
    (8, "terminal", BOOL),
    (9, "exit_status", UINT),
    (10, "exited_at", MESSAGE, TIMESTAMP),
    (11, "exec_id", STRING),
)
KILL_REQUEST = (_ID, _EXEC_ID, (3, "signal", UINT), (4, "all", BOOL))
CLOSE_IO_REQUEST = (_ID, _EXEC_ID, (3, "stdin", BOOL))
PIDS_RESPONSE = ((1, "processes", [MESSAGE], PROCESS_INFO),)
CHECKPOINT_TASK_REQUEST = (_ID, (2, "path", STRING), (3, "options", MESSAGE, ANY))
UPDATE_TASK_REQUEST = (_ID, (2, "resources", MESSAGE, ANY), (3, "annotations", [MESSAGE], KEY_VALUE))
WAIT_RESPONSE = ((1, "exit_status", UINT), (2, "exited_at", MESSAGE, TIMESTAMP))
STATS_RESPONSE = ((1, "stats", MESSAGE, ANY),)
CONNECT_RESPONSE = ((1, "shim_pid", UINT), (2, "task_pid", UINT), (3, "version", STRING))
SHUTDOWN_REQUEST = (_ID, (2, "now", BOOL))

# --- the shim's event queue (pycontainerd.shim.v1.Events) -----------------------------------
FETCH_EVENTS_REQUEST = ((1, "after", UINT), (2, "wait", BOOL), (3, "timeout_ms", UINT))
SHIM_EVENT = (
    (1, "seq", UINT),
    (2, "timestamp", MESSAGE, TIMESTAMP),
    (3, "namespace", STRING),
    (4, "topic", STRING),
    (5, "event", MESSAGE, ANY),
)
FETCH_EVENTS_RESPONSE = ((1, "events", [MESSAGE], SHIM_EVENT),)
ACK_EVENTS_REQUEST = ((1, "seq", UINT),)

# --- containerd.events -----------------------------------------------------------------------
TASK_IO = ((1, "stdin", STRING), (2, "stdout", STRING), (3, "stderr", STRING), (4, "terminal", BOOL))
TASK_CREATE = (
    (1, "container_id", STRING),
    (2, "bundle", STRING),
    (3, "rootfs", [MESSAGE], MOUNT),
    (4, "io", MESSAGE, TASK_IO),
    (5, "checkpoint", STRING),
    (6, "pid", UINT),
)
TASK_START = ((1, "container_id", STRING), (2, "pid", UINT))
TASK_DELETE = (
    (1, "container_id", STRING),
    (2, "pid", UINT),
    (3, "exit_status", UINT),
    (4, "exited_at", MESSAGE, TIMESTAMP),
    (5, "id", STRING),
)
TASK_EXIT = (
    (1, "container_id", STRING),
    (2, "id", STRING),
    (3, "pid", UINT),
    (4, "exit_status", UINT),
    (5, "exited_at", MESSAGE, TIMESTAMP),
)
CONTAINER_ONLY = ((1, "container_id", STRING),)  # TaskOOM, TaskPaused, TaskResumed
TASK_EXEC_ADDED = ((1, "container_id", STRING), (2, "exec_id", STRING))
TASK_EXEC_STARTED = ((1, "container_id", STRING), (2, "exec_id", STRING), (3, "pid", UINT))

# --- io.containerd.cgroups.v1 metrics (github.com/containerd/cgroups stats/v1) ---------------
PIDS_STAT = ((1, "current", UINT), (2, "limit", UINT))
CPU_USAGE = ((1, "total", UINT), (2, "kernel", UINT), (3, "user", UINT), (4, "per_cpu", [UINT]))
THROTTLE = ((1, "periods", UINT), (2, "throttled_periods", UINT), (3, "throttled_time", UINT))
CPU_STAT = ((1, "usage", MESSAGE, CPU_USAGE), (2, "throttling", MESSAGE, THROTTLE))
MEMORY_ENTRY = ((1, "limit", UINT), (2, "usage", UINT), (3, "max", UINT), (4, "failcnt", UINT))
# memory.stat keys in field order (the kernel's names, not containerd's field names).
MEMORY_STAT_KEYS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout", "pgfault",
    "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "hierarchical_memory_limit", "hierarchical_memsw_limit",
)  # fmt: skip
_MEMORY_NAMES = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pg_pg_in", "pg_pg_out", "pg_fault",
    "pg_maj_fault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
)  # fmt: skip
MEMORY_STAT = (
    *((i + 1, name, UINT) for i, name in enumerate(_MEMORY_NAMES)),
    (16, "hierarchical_memory_limit", UINT),
    (17, "hierarchical_swap_limit", UINT),
    *((i + 18, "total_" + name, UINT) for i, name in enumerate(_MEMORY_NAMES)),
    (33, "usage", MESSAGE, MEMORY_ENTRY),
    (34, "swap", MESSAGE, MEMORY_ENTRY),
    (35, "kernel", MESSAGE, MEMORY_ENTRY),
    (36, "kernel_tcp", MESSAGE, MEMORY_ENTRY),
)
MEMORY_FIELD_OF = dict(zip(MEMORY_STAT_KEYS[:15], _MEMORY_NAMES, strict=True)) | {
    "hierarchical_memory_limit": "hierarchical_memory_limit",
    "hierarchical_memsw_limit": "hierarchical_swap_limit",
}
BLKIO_ENTRY = (
    (1, "op", STRING),
    (2, "device", STRING),
    (3, "major", UINT),
    (4, "minor", UINT),
    (5, "value", UINT),
)
BLKIO_STAT = tuple((i + 1, name, [MESSAGE], BLKIO_ENTRY) for i, name in enumerate((
    "io_service_bytes_recursive", "io_serviced_recursive", "io_queued_recursive", "io_service_time_recursive",
    "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive", "sectors_recursive",
)))  # fmt: skip
MEMORY_OOM_CONTROL = ((1, "oom_kill_disable", UINT), (2, "under_oom", UINT), (3, "oom_kill", UINT))
METRICS_V1 = (
    (2, "pids", MESSAGE, PIDS_STAT),
    (3, "cpu", MESSAGE, CPU_STAT),
    (4, "memory", MESSAGE, MEMORY_STAT),
    (5, "blkio", MESSAGE, BLKIO_STAT),
    (9, "memory_oom_control", MESSAGE, MEMORY_OOM_CONTROL),
)

# --- io.containerd.cgroups.v2 metrics (github.com/containerd/cgroups cgroup2/stats) -----------
CPU_STAT_V2 = tuple(
    (i + 1, name, UINT)
    for i, name in enumerate(
        ("usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec")
    )
)
# Fields 1-31 of MemoryStat carry memory.stat's keys under the kernel's own names.
MEMORY_STAT_V2_KEYS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
    "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault",
    "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate",
    "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
)  # fmt: skip
MEMORY_STAT_V2 = (
    *((i + 1, name, UINT) for i, name in enumerate(MEMORY_STAT_V2_KEYS)),
    (32, "usage", UINT),
    (33, "usage_limit", UINT),
    (34, "swap_usage", UINT),
    (35, "swap_limit", UINT),
    (36, "max_usage", UINT),
    (37, "swap_max_usage", UINT),
)
MEMORY_EVENTS = tuple((i + 1, name, UINT) for i, name in enumerate(("low", "high", "max", "oom", "oom_kill")))
IO_ENTRY = tuple(
    (i + 1, name, UINT) for i, name in enumerate(("major", "minor", "rbytes", "wbytes", "rios", "wios"))
)
IO_STAT = ((1, "usage", [MESSAGE], IO_ENTRY),)
HUGETLB_STAT_V2 = ((1, "current", UINT), (2, "max", UINT), (3, "pagesize", STRING))
METRICS_V2 = (
    (1, "pids", MESSAGE, PIDS_STAT),
    (2, "cpu", MESSAGE, CPU_STAT_V2),
    (4, "memory", MESSAGE, MEMORY_STAT_V2),
    (6, "io", MESSAGE, IO_STAT),
    (7, "hugetlb", [MESSAGE], HUGETLB_STAT_V2),
    (8, "memory_events", MESSAGE, MEMORY_EVENTS),
)
