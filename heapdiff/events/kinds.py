"""Who is who among ETW records: kernel group GUIDs, hook ids, and the event kinds heapdiff counts.

A classic record (SYSTEM, compact, PERFINFO headers) names its provider by the group byte of its HookId and its
opcode by the type byte; a record with a GUID in its header (EVENT_TRACE_HEADER, instance, EVENT_HEADER) names both
directly. Relogged traces write kernel events the second way, so heapdiff maps every record to one "hook"
(group << 8 | opcode) whenever its GUID is a kernel group's GUID, and decodes by hook whatever the header kind.
Source: the format notes, section 3.7 (group table) and sections 4-6 (hooks).
"""

from __future__ import annotations

import uuid
from typing import Final

#: 3.7 group byte -> provider GUID (lowercase, no braces)
GROUP_GUIDS: Final[dict[int, str]] = {
    0x00: "68fdd900-4a3e-11d1-84f4-0000f80464e3",  # EventTrace header
    0x01: "3d6fa8d4-fe05-11d0-9dda-00c04fd7ba7c",  # DiskIo
    0x02: "3d6fa8d3-fe05-11d0-9dda-00c04fd7ba7c",  # PageFault
    0x03: "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c",  # Process
    0x04: "90cbdc39-4a3e-11d1-84f4-0000f80464e3",  # FileIo
    0x05: "3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c",  # Thread
    0x06: "9a280ac0-c8e0-11d1-84e2-00c04fb998a2",  # TcpIp
    0x07: "3282fc76-feed-498e-8aa7-e70f459d430e",  # Job
    0x08: "bf3a50c5-a9c9-4988-a005-2df0b7c80f80",  # UdpIp
    0x09: "ae53722e-c863-11d2-8659-00c04fa321a1",  # Registry
    0x0A: "13976d09-a327-438c-950b-7f03192815c7",  # DbgPrint
    0x0B: "01853a65-418f-4f36-aefc-dc0f1d2fd235",  # SystemConfig
    0x0C: "99134383-5248-43fc-834b-529454e75df3",  # Spare1
    0x0D: "42695762-ea50-497a-9068-5cbbb35e0b95",  # Wnf
    0x0E: "0268a8b6-74fd-4302-9dd0-6e8f1795c0cf",  # Pool
    0x0F: "ce1dbfb4-137e-4da6-87b0-3f59aa102cbc",  # PerfInfo
    0x10: "222962ab-6180-4b88-a825-346b75f2a24a",  # Heap
    0x11: "89497f50-effe-4440-8cf2-ce6b1cdcaca7",  # Object
    0x12: "e43445e0-0903-48c3-b878-ff0fccebdd04",  # Power
    0x13: "a9152f00-3f58-4bee-92a1-70c7d079d5dd",  # Modbound
    0x14: "2cb15d1d-5fc1-11d2-abe1-00a0c911f518",  # Image
    0x15: "b2d14872-7c5b-463d-8419-ee9bf7d23e04",  # Dpc
    0x17: "3ac66736-cc59-4cff-8115-8df50e39816b",  # CritSec
    0x18: "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3",  # StackWalk
    0x19: "9aec974b-5b8e-4118-9b92-3186d8002ce5",  # Ums
    0x1A: "45d8cccd-539f-4b72-a8b7-5c683142609a",  # Alpc
    0x1B: "d837ca92-12b9-44a5-ad6a-3a65b3578aa8",  # SplitIo
    0x1C: "c861d0e2-a2c1-4d36-9f9c-970bab943a12",  # ThreadPool
    0x1D: "7f2a405c-69b5-4bf9-a1f5-30e8f1afab5e",  # Hypervisor
    0x1E: "2ce9a149-effe-42f0-a635-a1d39e26c8f2",  # HypervisorX
}

GROUP_PROCESS: Final = 0x03
GROUP_PERFINFO: Final = 0x0F
GROUP_HEAP: Final = 0x10
GROUP_IMAGE: Final = 0x14
GROUP_STACKWALK: Final = 0x18

HEAP_GUID: Final = GROUP_GUIDS[GROUP_HEAP]
IMAGE_GUID: Final = GROUP_GUIDS[GROUP_IMAGE]
PROCESS_GUID: Final = GROUP_GUIDS[GROUP_PROCESS]
STACKWALK_GUID: Final = GROUP_GUIDS[GROUP_STACKWALK]
#: 6.3 KernelTraceControl ImageID task GUID (ImageID opcode 0, DbgID_RSDS opcode 0x24)
IMAGE_ID_GUID: Final = "b3e675d7-2554-4f18-830b-2762732560de"

# hooks = group << 8 | opcode
HOOK_HEADER: Final = 0x0000
HOOK_PROCESS_START: Final = 0x0301
HOOK_PROCESS_END: Final = 0x0302
HOOK_PROCESS_DCSTART: Final = 0x0303
HOOK_PROCESS_DCEND: Final = 0x0304
HOOK_PROCESS_DEFUNCT: Final = 0x0327
#: 3.7: Process group type 10 is an image load, reported under the Image GUID
HOOK_PROCESS_LOAD_IMAGE: Final = 0x030A
#: PERFINFO_LOG_TYPE_MARK: ``xperf -m NAME`` (events.marks)
HOOK_PERFINFO_MARK: Final = GROUP_PERFINFO << 8 | 0x22
HOOK_HEAP_CREATE: Final = 0x1020
HOOK_HEAP_ALLOC: Final = 0x1021
HOOK_HEAP_REALLOC: Final = 0x1022
HOOK_HEAP_DESTROY: Final = 0x1023
HOOK_HEAP_FREE: Final = 0x1024
HOOK_HEAP_EXPAND: Final = 0x1025
HOOK_HEAP_SNAPSHOT: Final = 0x1026
HOOK_HEAP_CONTRACT: Final = 0x102A
HOOK_IMAGE_UNLOAD: Final = 0x1402
HOOK_IMAGE_DCSTART: Final = 0x1403
HOOK_IMAGE_DCEND: Final = 0x1404
HOOK_IMAGE_LOAD: Final = 0x140A
HOOK_STACK_WALK: Final = 0x1820
HOOK_STACK_KEY_CREATE: Final = 0x1822
HOOK_STACK_KEY_DELETE: Final = 0x1823
HOOK_STACK_KEY_RUNDOWN: Final = 0x1824
HOOK_STACK_KEY_KERNEL: Final = 0x1825
HOOK_STACK_KEY_USER: Final = 0x1826

#: 4.4 SourceId names
HEAP_SOURCES: Final[dict[int, str]] = {
    1: "lookaside",
    2: "low-fragmentation heap",
    3: "main path",
    4: "slow path",
    5: "invalid",
    6: "segment heap",
}

#: the names `info --json` and the report use for record kinds
EVENT_KIND_NAMES: Final = ("heap_alloc", "heap_free", "heap_realloc", "heap_create", "heap_destroy", "heap_other",
                           "stack_walk", "image", "process")
HEAP_HOOK_KIND: Final[dict[int, str]] = {
    HOOK_HEAP_ALLOC: "heap_alloc",
    HOOK_HEAP_FREE: "heap_free",
    HOOK_HEAP_REALLOC: "heap_realloc",
    HOOK_HEAP_CREATE: "heap_create",
    HOOK_HEAP_DESTROY: "heap_destroy",
}


def guid_from_le(raw: bytes) -> str:
    """Windows GUID bytes (Data1-3 little-endian) -> lowercase canonical text."""
    return str(uuid.UUID(bytes_le=bytes(raw)))
