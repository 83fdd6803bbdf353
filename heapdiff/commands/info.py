"""`heapdiff info`: what a trace holds, as a JSON-able dict and as text for a person."""

from __future__ import annotations

from typing import Any

from heapdiff.etl.logfile import filetime_to_utc, iso_utc
from heapdiff.etl.trace import TraceFile
from heapdiff.events.scan import Progress, TraceScan, scan


def run_info(tf: TraceFile, progress: Progress | None = None) -> dict[str, Any]:
    """Read the whole trace once (no reducer) and describe it."""
    return info_dict(scan(tf, progress=progress))


def info_dict(s: TraceScan) -> dict[str, Any]:
    h = s.header
    anomalies = dict(s.anomalies.as_dict())
    return {
        "path": s.path,
        "bytes": s.size,
        "pointer_size": h.pointer_size,
        "buffers": s.buffers,
        "compressed_buffers": s.compressed_buffers,
        "buffer_size": h.buffer_size,
        "records": s.records,
        "events_lost": h.events_lost,
        "buffers_lost": h.buffers_lost,
        "start_utc": iso_utc(filetime_to_utc(h.start_filetime)),
        "end_utc": iso_utc(filetime_to_utc(h.end_filetime)),
        "logger_name": h.logger_name,
        "log_file_name": h.log_file_name,
        "clock_type": h.clock_type,
        "perf_freq": h.perf_freq,
        "number_of_processors": h.number_of_processors,
        "os_version": f"{h.version & 0xFF}.{(h.version >> 8) & 0xFF} build {h.provider_version}",
        "providers": dict(sorted(s.providers.items())),
        "events": dict(s.events),
        "stack_refs": s.stack_refs,
        "stacks_matched": s.stacks_matched,
        "extended_item_stacks": s.ext_stacks,
        "distinct_stacks": len(s.sequences),
        "images": len(s.images),
        "processes": sorted({(p.pid, p.image_name) for p in s.processes}),
        # seconds from the start, as --from/--to/--at take them (mark:NAME)
        "marks": [{"name": name, "seconds": (h.raw_to_filetime(ts) - h.start_filetime) / 1e7}
                  for ts, name in s.marks],
        "anomalies": anomalies,
        "anomaly_first_offsets": {k: f"{v:#x}" for k, v in sorted(s.first_anomaly_offset.items())},
    }


def info_text(d: dict[str, Any]) -> str:
    lines = [
        f"trace        {d['path']}",
        f"size         {d['bytes']:,} bytes, {d['buffers']} buffers of {d['buffer_size']:,} bytes"
        + (f" ({d['compressed_buffers']} compressed)" if d["compressed_buffers"] else ""),
        f"logger       {d['logger_name'] or '(none)'}  ({d['pointer_size'] * 8}-bit, Windows {d['os_version']},"
        f" {d['number_of_processors']} CPUs)",
        f"time (UTC)   {d['start_utc']} .. {d['end_utc']}",
        f"records      {d['records']:,}",
        f"lost         {d['events_lost']:,} events, {d['buffers_lost']:,} buffers",
        "events       " + ", ".join(f"{k} {v:,}" for k, v in d["events"].items() if v) if any(d["events"].values())
        else "events       (none)",
        f"stacks       {d['stack_refs']:,} references, {d['stacks_matched']:,} matched to an event,"
        f" {d['distinct_stacks']:,} distinct",
        f"images       {d['images']:,} image events; processes: "
        + (", ".join(f"{name} ({pid})" for pid, name in d["processes"][:12]) or "(none)")
        + (f" and {len(d['processes']) - 12} more" if len(d["processes"]) > 12 else ""),
        "providers    " + f"{len(d['providers'])} providers",
    ]
    if d["marks"]:
        shown = ", ".join(f"{m['name']} at {m['seconds']:.3f} s" for m in d["marks"][:20])
        more = f" and {len(d['marks']) - 20} more" if len(d["marks"]) > 20 else ""
        lines.insert(8, f"marks        {shown}{more} (use as --from/--to/--at mark:NAME)")
    for guid, n in sorted(d["providers"].items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"  {n:>12,}  {guid}")
    if d["anomalies"]:
        lines.append("anomalies")
        for k, v in d["anomalies"].items():
            where = d["anomaly_first_offsets"].get(k)
            lines.append(f"  {v:>12,}  {k}" + (f" (first at byte offset {where})" if where else ""))
    return "\n".join(lines)
