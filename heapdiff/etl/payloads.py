"""Event payloads, declared once per pointer size (notes 4.3 heap, 5.1 and 5.3 stacks, 6.1-6.3 images and processes).

The layout table of :mod:`heapdiff.events.layout`, the rare-record decoders of :mod:`heapdiff.events.decode` and the
trace writer all read these declarations: a payload field can only be wrong in one place.
"""

from __future__ import annotations

from heapdiff.etl.cstruct import Payload, Struct

#: 4.3 Alloc (0x1021): HeapHandle ptr @0/0, AllocSize ptr @4/8, AllocAddress ptr @8/0x10, SourceId u32 @0xC/0x18
HEAP_ALLOC = Payload("HeapAlloc", [("HeapHandle", "ptr"), ("AllocSize", "ptr"), ("AllocAddress", "ptr"),
                                   ("SourceId", "u32")], 0x10, 0x1C)
#: 4.3 Free (0x1024): HeapHandle @0/0, FreeAddress @4/8, SourceId u32 @8/0x10
HEAP_FREE = Payload("HeapFree", [("HeapHandle", "ptr"), ("FreeAddress", "ptr"), ("SourceId", "u32")], 0x0C, 0x14)
#: 4.3 ReAlloc (0x1022): HeapHandle @0/0, NewAllocAddress @4/8, OldAllocAddress @8/0x10, NewAllocSize @0xC/0x18,
#: OldAllocSize @0x10/0x20, SourceId u32 @0x14/0x28
HEAP_REALLOC = Payload("HeapReAlloc", [("HeapHandle", "ptr"), ("NewAllocAddress", "ptr"), ("OldAllocAddress", "ptr"),
                                       ("NewAllocSize", "ptr"), ("OldAllocSize", "ptr"), ("SourceId", "u32")],
                       0x18, 0x2C)
#: 4.3 Create (0x1020) v2: HeapHandle @0/0, HeapFlags u32 @4/8
HEAP_CREATE = Payload("HeapCreate", [("HeapHandle", "ptr"), ("HeapFlags", "u32")], 0x08, 0x0C)
#: 4.3 Create v3 adds ReservedSpace @8/0xC, CommittedSpace @0xC/0x14, AllocatedSpace @0x10/0x1C (unaligned)
HEAP_CREATE_V3 = Payload("HeapCreateV3", [("HeapHandle", "ptr"), ("HeapFlags", "u32"), ("ReservedSpace", "ptr"),
                                          ("CommittedSpace", "ptr"), ("AllocatedSpace", "ptr")], 0x14, 0x24)
#: 4.3 Destroy (0x1023), Lock/Unlock/Validate/Walk: HeapHandle only
HEAP_COMMON = Payload("HeapCommon", [("HeapHandle", "ptr")], 0x04, 0x08)
#: 4.3 Expand (0x1025) / Contract (0x102A) v2: 7 pointer-sized fields + NoOfUCRs u32
HEAP_EXPANSION = Payload("HeapExpansion", [("HeapHandle", "ptr"), ("Size", "ptr"), ("Address", "ptr"),
                                           ("FreeSpace", "ptr"), ("CommittedSpace", "ptr"), ("ReservedSpace", "ptr"),
                                           ("NoOfUCRs", "u32")], 0x1C, 0x34)
HEAP_EXPANSION_V3 = Payload("HeapExpansionV3", [*HEAP_EXPANSION.fields, ("AllocatedSpace", "ptr")], 0x20, 0x3C)

#: 4.3 SnapShot (0x1026) v2: HeapHandle ptr, FreeSpace S, CommittedSpace S, ReservedSpace S, HeapFlags u32,
#: ProcessId u32, LargeUCRSpace S, FreeListLength u32, UCRLength u32; v3 adds AllocatedSpace S
HEAP_SNAPSHOT = Payload("HeapSnapShot", [
    ("HeapHandle", "ptr"), ("FreeSpace", "ptr"), ("CommittedSpace", "ptr"), ("ReservedSpace", "ptr"),
    ("HeapFlags", "u32"), ("ProcessId", "u32"), ("LargeUCRSpace", "ptr"), ("FreeListLength", "u32"),
    ("UCRLength", "u32"),
], 0x24, 0x38)
HEAP_SNAPSHOT_V3 = Payload("HeapSnapShotV3", [*HEAP_SNAPSHOT.fields, ("AllocatedSpace", "ptr")], 0x28, 0x40)

#: 5.1 StackWalk (0x1820): EventTimeStamp u64 @0, StackProcess u32 @8, StackThread u32 @0xC, frames ptr[] @0x10
STACK_WALK = Struct("STACK_WALK_EVENT_DATA", 0x10, [
    (0x00, "EventTimeStamp", "u64"),
    (0x08, "StackProcess", "u32"),
    (0x0C, "StackThread", "u32"),
])
#: 5.3 StackKeyKernel/User (0x1825/0x1826): as STACK_WALK then StackKey ptr @0x10
STACK_KEY_REF = Payload("StackKeyRef", [("EventTimeStamp", "u64"), ("StackProcess", "u32"), ("StackThread", "u32"),
                                        ("StackKey", "ptr")], 0x14, 0x18)
#: 5.3 KeyCreate/KeyDelete/KeyRundown (0x1822-0x1824): StackKey ptr @0, then ptr frames
STACK_KEY_DEF = Payload("StackKeyDef", [("StackKey", "ptr")], 0x04, 0x08)

#: 6.1 Image v2/v3: ImageBase ptr @0/0, ImageSize ptr @4/8, ProcessId u32 @8/0x10, ImageChecksum @0xC/0x14,
#: TimeDateStamp @0x10/0x18, SignatureLevel.. u32 @0x14/0x1C, DefaultBase ptr @0x18/0x20, Reserved1..4 @0x1C/0x28,
#: FileName UTF-16Z @0x2C/0x38
IMAGE_LOAD = Payload("ImageLoad", [("ImageBase", "ptr"), ("ImageSize", "ptr"), ("ProcessId", "u32"),
                                   ("ImageChecksum", "u32"), ("TimeDateStamp", "u32"), ("Signature", "u32"),
                                   ("DefaultBase", "ptr"), ("Reserved1", "u32"), ("Reserved2", "u32"),
                                   ("Reserved3", "u32"), ("Reserved4", "u32")], 0x2C, 0x38)
#: 6.1 Image v1: ImageBase ptr, ImageSize ptr, ProcessId u32, FileName @0xC/0x14
IMAGE_LOAD_V1 = Payload("ImageLoadV1", [("ImageBase", "ptr"), ("ImageSize", "ptr"), ("ProcessId", "u32")],
                        0x0C, 0x14)
#: 6.1 Image v0: BaseAddress ptr, ModuleSize u32, FileName @8/0xC
IMAGE_LOAD_V0 = Payload("ImageLoadV0", [("ImageBase", "ptr"), ("ImageSize", "u32")], 0x08, 0x0C)

#: 6.2 Process v3+: UniqueProcessKey ptr @0/0, ProcessId u32 @4/8, ParentId @8/0xC, SessionId @0xC/0x10,
#: ExitStatus i32 @0x10/0x14, DirectoryTableBase ptr @0x14/0x18, [v4+] Flags u32 @0x18/0x20, then the SID
PROCESS_V3 = Payload("ProcessV3", [("UniqueProcessKey", "ptr"), ("ProcessId", "u32"), ("ParentId", "u32"),
                                   ("SessionId", "u32"), ("ExitStatus", "i32"), ("DirectoryTableBase", "ptr")],
                     0x18, 0x20)
PROCESS_V4 = Payload("ProcessV4", [*PROCESS_V3.fields, ("Flags", "u32")], 0x1C, 0x24)
#: 6.2 UserSID, non-NULL form: TOKEN_USER {Sid ptr, Attributes u32} as laid out in memory (2 x P bytes: the
#: 64-bit form has 4 bytes of alignment padding, stale in real files), then the SID itself
TOKEN_USER32 = Struct("TOKEN_USER32", 0x08, [(0x00, "Sid", "u32"), (0x04, "Attributes", "u32")])
TOKEN_USER64 = Struct("TOKEN_USER64", 0x10, [(0x00, "Sid", "u64"), (0x08, "Attributes", "u32")])
#: SID: Revision u8 @0, SubAuthorityCount u8 @1, IdentifierAuthority 6 bytes big-endian @2, then
#: SubAuthorityCount x u32 @8
SID_HEADER = Struct("SID", 0x08, [(0x00, "Revision", "u8"), (0x01, "SubAuthorityCount", "u8"),
                                  (0x02, "IdentifierAuthority", "bytes6")])

#: 6.2 Process v2: UniqueProcessKey ptr, ProcessId, ParentId, SessionId, ExitStatus, then the SID
PROCESS_V2 = Payload("ProcessV2", PROCESS_V3.fields[:5], 0x14, 0x18)

#: 6.3 KernelTraceControl ImageID (opcode 0): ImageBase ptr, ImageSize ptr, ProcessId u32, TimeDateStamp u32,
#: OriginalFileName UTF-16Z @0x10/0x18
IMAGE_ID = Payload("ImageID", [("ImageBase", "ptr"), ("ImageSize", "ptr"), ("ProcessId", "u32"),
                               ("TimeDateStamp", "u32")], 0x10, 0x18)
#: 6.3 DbgID_RSDS (opcode 0x24): ImageBase ptr, ProcessId u32, GuidSig GUID @8/0xC, Age u32 @0x18/0x1C,
#: PdbFileName UTF-8Z @0x1C/0x20
DBGID_RSDS = Payload("DbgID_RSDS", [("ImageBase", "ptr"), ("ProcessId", "u32"), ("GuidSig", "guid"),
                                    ("Age", "u32")], 0x1C, 0x20)
