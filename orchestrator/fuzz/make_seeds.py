#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (orchestrator/fuzz/corpus/TARGET/) from the
acceptance vectors of crates/test-support/vectors/ and small hand-made inputs.

Usage: python3 orchestrator/fuzz/make_seeds.py [--orchestrator PATH]

The seeds follow the input framing documented at the top of each target (an option or selector
byte, then the data; sections separated by SEP). Seeds that need the encoder (compressed felts)
are made with `orchestrator blob encode` of the built binary (default: the workspace's debug
build); without it they are skipped. Large vectors are cut down so that the corpus stays small:
a few hundred KB in all. Re-running overwrites the seeds it writes and leaves the others.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "crates/test-support/vectors"
CORPUS = Path(__file__).resolve().parent / "corpus"
SEP = b"\n--8<--\n"
PIE_ENTRIES = [
    "metadata.json",
    "memory.bin",
    "additional_data.json",
    "execution_resources.json",
    "version.json",
]
# Index of each version in StarknetVersion::KNOWN.
VERSIONS = ["0.13.2", "0.13.3", "0.13.4", "0.13.5", "0.13.6", "0.14.0", "0.14.1", "0.14.2"]
STARK_PRIME = 2**251 + 17 * 2**192 + 1


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def state_update(block):
    return json.loads((VECTORS / f"da_blob/state_update/{block}.txt").read_text())


def trimmed(update, n_contracts=6, n_entries=3, n_other=3):
    """The first contracts, slots and other items of a state update: same shape, a few KB."""
    u = dict(update.get("result", update))
    sd = dict(u["state_diff"])
    sd["storage_diffs"] = [
        {"address": d["address"], "storage_entries": d["storage_entries"][:n_entries]}
        for d in sd["storage_diffs"][:n_contracts]
    ]
    for k in ["deprecated_declared_classes", "declared_classes", "deployed_contracts",
              "replaced_classes", "nonces"]:
        sd[k] = sd[k][:n_other]
    u["state_diff"] = sd
    return u


def option_byte(version, max_blobs=6, genesis=False, known=False):
    return bytes([VERSIONS.index(version) | max_blobs << 3 | genesis << 6 | known << 7])


def felt_words(felts):
    return b"".join(int(f, 0).to_bytes(32, "big") for f in felts)


def encode_felts(orchestrator, update, version, compress):
    """`orchestrator blob encode --format felts` of `update` (aliases and nonces: none)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "su.json"
        path.write_text(json.dumps(update))
        aliases = Path(tmp) / "aliases.json"
        # Every address and key at or above 0x80 gets an alias: 0x80, 0x81, ...
        sd = update["state_diff"]
        values = set()
        for d in sd["storage_diffs"]:
            a = int(d["address"], 16)
            if a >= 0x80:
                values.add(a)
                values.update(int(e["key"], 16) for e in d["storage_entries"]
                              if int(e["key"], 16) >= 0x80)
        for k, f in [("deployed_contracts", "address"), ("nonces", "contract_address"),
                     ("replaced_classes", "contract_address")]:
            values.update(int(x[f], 16) for x in sd[k] if int(x[f], 16) >= 0x80)
        aliases.write_text(json.dumps(
            [{"key": hex(v), "alias": hex(0x80 + i)} for i, v in enumerate(sorted(values))]))
        nonces = Path(tmp) / "nonces.json"
        nonces.write_text(json.dumps(
            [{"address": d["address"], "nonce": "0"} for d in sd["storage_diffs"]]))
        cmd = [str(orchestrator), "blob", "encode", "--state-update", str(path),
               "--starknet-version", version, "--format", "felts",
               "--nonces", str(nonces), "--aliases", str(aliases)]
        if compress:
            cmd.append("--compress")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return out.split()


def memory_cell(segment, offset, value):
    """One cell of a PIE's memory.bin: address (segment << 47 | offset, 8 bytes LE) and an
    integer value (32 bytes LE)."""
    return struct.pack("<Q", segment << 47 | offset) + value.to_bytes(32, "little")


def pie_entries(name):
    z = zipfile.ZipFile(VECTORS / f"pie/{name}.zip")
    return {n: z.read(n) for n in z.namelist()}


def output_cells(memory):
    """The values of segment 2 (the output segment of the vectors' PIEs), by offset."""
    cells = {}
    for i in range(0, len(memory), 40):
        addr = struct.unpack("<Q", memory[i:i + 8])[0]
        if addr >> 47 == 2:
            cells[addr & (2**47 - 1)] = int.from_bytes(memory[i + 8:i + 40], "little")
    return [cells[k] for k in sorted(cells)]


def structured_pie(entries):
    return SEP.join(entries.get(n, b"") for n in PIE_ENTRIES)


def fibonacci_with_pages():
    """The Fibonacci PIE with a 12-cell output in three pages and the five-pair topology of the
    Merkle acceptance vector (cells 1..12)."""
    e = dict(pie_entries("fibonacci"))
    meta = json.loads(e["metadata.json"])
    meta["builtin_segments"]["output"]["size"] = 12
    e["metadata.json"] = compact(meta).encode()
    memory = e["memory.bin"]
    cells = [memory[i:i + 40] for i in range(0, len(memory), 40)]
    cells = [c for c in cells if struct.unpack("<Q", c[:8])[0] >> 47 != 2]
    cells += [memory_cell(2, i, i + 1) for i in range(12)]
    e["memory.bin"] = b"".join(cells)
    e["additional_data.json"] = compact({"output_builtin": {
        "pages": {"1": [4, 4], "2": [8, 4]},
        "attributes": {"gps_fact_topology": [1, 0, 1, 0, 0, 2, 1, 1, 0, 2]}}}).encode()
    return e


def program_output(name):
    return (VECTORS / f"kzg_sidecar/program_output/{name}.txt").read_text().split()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR",
                                      Path.home() / ".cache/orchestrator/target")) / "debug/orchestrator"
    p.add_argument("--orchestrator", type=Path, default=default_bin)
    args = p.parse_args()
    have_bin = args.orchestrator.exists()
    if not have_bin:
        print(f"no {args.orchestrator}: skipping the seeds made with the encoder", file=sys.stderr)

    # --- state_update_blobs ---
    su178 = state_update(178)
    write("state_update_blobs", "178-0.13.2", option_byte("0.13.2") + compact(su178).encode())
    write("state_update_blobs", "178-0.13.3", option_byte("0.13.3") + compact(su178).encode())
    write("state_update_blobs", "178-0.14.2-known",
          option_byte("0.14.2", known=True) + compact(su178).encode())
    write("state_update_blobs", "178-rpc-genesis", option_byte("0.13.4", genesis=True)
          + compact({"jsonrpc": "2.0", "id": 1, "result": su178}).encode())
    for block, version in [(631861, "0.13.2"), (638353, "0.13.3"), (640641, "0.13.5"),
                           (671070, "0.14.1")]:
        write("state_update_blobs", f"{block}-{version}",
              option_byte(version) + compact(trimmed(state_update(block))).encode())
    two = [trimmed(state_update(640641), 4, 2, 2), trimmed(state_update(671070), 4, 2, 2)]
    write("state_update_blobs", "two-blocks-0.13.4", option_byte("0.13.4", known=True)
          + compact(two).encode())
    write("state_update_blobs", "one-blob-max", option_byte("0.13.2", max_blobs=1)
          + compact(trimmed(state_update(638353), 40, 20, 5)).encode())

    # --- da_text_formats (selector: 0 felt list, 1 nonces, 2 aliases, 3 blob hex,
    #     4 version, 5 felt) ---
    write("da_text_formats", "nonces-178", b"\x01" + (VECTORS / "da_blob/nonces/178.txt").read_bytes())
    write("da_text_formats", "nonces-rpc-hex", b"\x01" + compact(
        [{"nonce": "10fc", "address": "0x11"}, {"nonce": "0x50", "contract_address": "16"}]).encode())
    write("da_text_formats", "aliases", b"\x02" + compact(
        [{"key": "0x1000", "alias": "0x90"}, {"key": "4096", "value": "145"}]).encode())
    write("da_text_formats", "felts-lines", b"\x00" + "\n".join(program_output("6806848")).encode())
    write("da_text_formats", "felts-json", b"\x00" + compact(
        ["0x1", 2, "0x800000000000011000000000000000000000000000000000000000000000000"]).encode())
    write("da_text_formats", "blob-hex-short", b"\x03" + b"0x" + b"00" * 64 + b"\n")
    for i, v in enumerate(["0.13.2", "v0.14.1", "0.14.4", "0.13.2.1", "0.12.3"]):
        write("da_text_formats", f"version-{i}", b"\x04" + v.encode())
    write("da_text_formats", "felt-max", b"\x05" + hex(STARK_PRIME - 1).encode())
    write("da_text_formats", "felt-dec", b"\x05" + str(STARK_PRIME - 1).encode())

    # --- stateless_decompress (32-byte words) and felt lists of real encodings ---
    if have_bin:
        for block, version in [(178, "0.13.3"), (640641, "0.13.5"), (671070, "0.14.2")]:
            update = su178 if block == 178 else trimmed(state_update(block), 12, 4, 4)
            felts = encode_felts(args.orchestrator, update, version, compress=True)
            write("stateless_decompress", f"{block}-{version}", felt_words(felts))
            plain = encode_felts(args.orchestrator, update, "0.13.2", compress=False)
            write("da_text_formats", f"felts-{block}", b"\x00" + "\n".join(plain).encode())
    # The example of the compression's unit test: [1, 1, 70000, 2^70].
    header = 4 << 20 | 1 << 80 | 1 << 120 | 1 << 140 | 1 << 160
    words = [header, 1 << 70, 70000, 1, 2, 5 + 6 * 7 + 4 * 49 + 2 * 343]
    write("stateless_decompress", "small-example", b"".join(w.to_bytes(32, "big") for w in words))
    write("stateless_decompress", "empty", bytes(32))

    # --- blob_decode (bit 0 of byte 0 set: raw file; clear: layout byte + blob bytes) ---
    blob = bytes.fromhex((VECTORS / "da_blob/test_blob/178.txt").read_text().strip())
    write("blob_decode", "178-prefix", b"\x00\x80" + blob[:2048])
    write("blob_decode", "178-prefix-0x-crlf", b"\x00\x85" + blob[:512])
    write("blob_decode", "two-lines-upper", b"\x00\x1a" + bytes(range(64)))
    write("blob_decode", "bad-char", b"\x00\x20" + bytes(96))
    write("blob_decode", "raw-short", b"\x01" + b"0x" + b"00" * 32 + b"\n\n")
    write("blob_decode", "raw-blank", b"\x01 \n\t\n")

    # --- pie_fact (bit 0 of byte 0 set: raw zip; clear: entries separated by SEP) ---
    fib_zip = (VECTORS / "pie/fibonacci.zip").read_bytes()
    write("pie_fact", "fibonacci-zip", b"\x01" + fib_zip)
    write("pie_fact", "fibonacci-entries", b"\x00" + structured_pie(pie_entries("fibonacci")))
    write("pie_fact", "fibonacci-pages", b"\x00" + structured_pie(fibonacci_with_pages()))
    # Regression: an output segment size far above the cells the memory holds (it used to
    # allocate one slot per claimed cell and abort).
    huge = dict(pie_entries("fibonacci"))
    huge["metadata.json"] = huge["metadata.json"].replace(
        b'"output":{"index":2,"size":1}', b'"output":{"index":2,"size":99999999999999}')
    write("pie_fact", "fibonacci-huge-output-size", b"\x00" + structured_pie(huge))
    write("external_runner_output", "fibonacci-huge-output-size", b"\x00" + structured_pie(huge))

    # --- snos_os_output (os_output.json) ---
    for name in ["20468828", "6806848"]:
        out = program_output(name)
        write("snos_os_output", f"kzg-{name}-dec", compact(out))
        write("snos_os_output", f"kzg-{name}-hex", compact([hex(int(x)) for x in out]))
    write("snos_os_output", "mixed", compact(["0x1", "10", 7, hex(STARK_PRIME - 1)]))
    write("snos_os_output", "aggregator", compact(
        [1, 2, 0xf00] + [0] * 11 + [1, 11, 12, 13, 14, 1, 0xaa, 1, 0xbb, 0]))

    # --- external_runner_output (flags: bit 0 raw zip, bit 1 os_output.json present) ---
    fib_out = compact([hex(v) for v in output_cells(pie_entries("fibonacci")["memory.bin"])])
    write("external_runner_output", "fibonacci-zip", b"\x01" + fib_zip)
    write("external_runner_output", "fibonacci-entries-json",
          b"\x02" + structured_pie(pie_entries("fibonacci")) + SEP + fib_out.encode())
    write("external_runner_output", "fibonacci-zip-json", b"\x03" + fib_zip + SEP + fib_out.encode())
    write("external_runner_output", "pages-json", b"\x02" + structured_pie(fibonacci_with_pages())
          + SEP + compact([hex(i + 1) for i in range(12)]).encode())

    # --- atlantic_response (selector: 0 query, 1 add query, 2 bucket, 3 bucket with queries,
    #     4 proof, 5 HTTP failure) ---
    query = {"id": "01JQ", "status": "DONE", "step": "PROOF_VERIFICATION", "errorReason": None,
             "integrityFactHash": None, "sharpFactHash": "0x" + "ab" * 32, "dedupId": "snos-7",
             "bucketId": "b1", "bucketJobIndex": 2, "layout": "dynamic"}
    write("atlantic_response", "query", b"\x00" + compact(
        {"atlanticQuery": query, "metadataUrls": ["https://example.invalid/m.json"]}).encode())
    write("atlantic_response", "add-query", b"\x01" + compact({"atlanticQueryId": "01JQ"}).encode())
    write("atlantic_response", "bucket", b"\x02" + compact(
        {"atlanticBucket": {"id": "b1", "status": "OPEN", "aggregatorVersion": "snos_aggregator_0.14.1"}}).encode())
    agg = dict(query, id="01JR", step="FACT_HASH_REGISTRATION", status="FAILED", errorReason="boom")
    write("atlantic_response", "bucket-queries", b"\x03" + compact(
        {"bucket": {"id": "b1", "status": "FAILED"}, "queries": [query, agg]}).encode())
    proof = {"public_input": {"layout": "dynamic", "n_steps": 72,
                              "memory_segments": {"output": {"begin_addr": 100, "stop_ptr": 103}},
                              "public_memory": [{"address": 100 + i, "page": 0, "value": hex(v)}
                                                for i, v in enumerate([7, 8, 9])]},
             "proof_hex": "0x00"}
    write("atlantic_response", "proof", b"\x04" + compact(proof).encode())
    write("atlantic_response", "http-503", b"\x05" + struct.pack("<H", 403) + b"<html>Service Unavailable</html>")

    # --- sharp_response (selector: 0 status, 1 add job, 2 proof, 3 fact, 4 HTTP failure) ---
    write("sharp_response", "status", b"\x00" + compact(
        {"status": "IN_PROGRESS", "validation_done": True}).encode())
    write("sharp_response", "status-invalid", b"\x00" + compact(
        {"status": "INVALID", "invalid_reason": "INVALID_CAIRO_PIE_FILE_FORMAT", "error_log": "x"}).encode())
    write("sharp_response", "add-job", b"\x01" + compact({"code": "JOB_RECEIVED_SUCCESSFULLY"}).encode())
    write("sharp_response", "proof", b"\x02" + compact(proof).encode())
    write("sharp_response", "fact", b"\x03" + b"0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782")
    write("sharp_response", "fact-short", b"\x03" + b"0x33144ad6b132b1012f15e50aa53de1ed91b3b1af729014c3f1c00b702f972ea")
    write("sharp_response", "http-429", b"\x04" + struct.pack("<H", 329) + compact({"error": "rate limited"}).encode())

    # --- queue_message (queue index, flags, receive count, then body SEP version SEP reason
    # SEP action).
    #     QueueType::all(): 0 job_handle_failure, 1 worker_trigger, 2.. the job queues, the
    #     last two the priority queues. ---
    for i, trigger in enumerate(["Snos", "\"SnosBatching\"", " StorageCleanup\n", "Nope"]):
        write("queue_message", f"trigger-{i}", bytes([1, 0, 1]) + trigger.encode())
    write("queue_message", "job-process", bytes([2, 0, 1]) + b'{"id":"$JOB1"}')
    write("queue_message", "job-verify", bytes([3, 0, 2]) + b'{"id":"$JOB3"}')
    write("queue_message", "job-unknown", bytes([4, 0, 5]) + b'{"id":"3f7c1b2e-8d4a-4c1e-9b3a-2f6d5e4c3b2a"}')
    write("queue_message", "job-bad", bytes([5, 0, 1]) + b'{"id":"not-a-uuid"}')
    write("queue_message", "dead-letter", bytes([0, 2, 6]) + b'{"id":"$JOB2"}' + SEP + SEP + b"handler failed")
    write("queue_message", "dead-letter-process", bytes([0, 4, 1]) + b'{"id":"$JOB1"}' + SEP + SEP + SEP + b"Process")
    write("queue_message", "dead-letter-verify", bytes([0, 6, 1]) + b'{"id":"$JOB3"}' + SEP + SEP + b"why" + SEP + b"Verify")
    write("queue_message", "dead-letter-garbage", bytes([0, 2, 1]) + b"garbage" + SEP + SEP + b"why")
    write("queue_message", "foreign-version", bytes([2, 1, 1]) + b'{"id":"$JOB1"}' + SEP + b"0.0.1")
    write("queue_message", "priority", bytes([255, 0, 1]) + b'{"id":"$JOB1"}')

    # --- api_request (method: 0 GET 1 POST 2 PUT 3 DELETE 4 PATCH 5 HEAD 6 OPTIONS; flags:
    #     bit 0 admin token, bit 1 peer, bit 2 JSON content type; then URI SEP body) ---
    gets = ["/health", "/ready", "/jobs", "/jobs?status=Failed&job_type=SnosRun&limit=2",
            "/jobs?status=Created,Failed&order=desc&offset=1", "/jobs/$JOB1", "/jobs/not-a-uuid",
            "/api/v1/jobs/$JOB2", "/jobs/block/3/status", "/jobs/block/x/status",
            "/batches/snos?limit=1&status=Closed", "/batches/aggregator?order=asc",
            "/blocks/batch-for-block/3", "/blocks/settlement-status/18446744073709551616",
            "/metrics", "/dashboard", "/nowhere"]
    for i, uri in enumerate(gets):
        write("api_request", f"get-{i}", bytes([0, 2]) + uri.encode())
    actions = ["/jobs/$JOB1/process", "/jobs/$JOB3/verify", "/jobs/$JOB2/retry?priority=true"]
    for i, uri in enumerate(actions):
        write("api_request", f"action-{i}", bytes([0, 1]) + uri.encode())
    admin = ["/admin/jobs/retry/failed?job_type=SnosRun", "/admin/jobs/requeue/created",
             "/admin/jobs/reverify/verification-timeout", "/api/v1/admin/batches/close-open",
             "/admin/triggers/Snos/pause", "/admin/triggers/Snos/resume"]
    for i, uri in enumerate(admin):
        write("api_request", f"admin-{i}", bytes([1, 7]) + uri.encode() + SEP + b"{}")
    write("api_request", "admin-no-token", bytes([1, 0]) + b"/admin/jobs/retry/failed")
    write("api_request", "admin-triggers", bytes([0, 1]) + b"/admin/triggers")
    write("api_request", "method-not-allowed", bytes([3, 0]) + b"/jobs")

    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    print(f"corpus: {sum(1 for f in CORPUS.rglob('*') if f.is_file())} files, {total} bytes")


if __name__ == "__main__":
    main()
