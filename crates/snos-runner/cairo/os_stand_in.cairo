// STAND-IN for the Starknet OS. It does NOT execute any transaction and proves nothing about
// the execution of the blocks it names.
//
// The orchestrator's StandInRunner (crates/snos-runner/src/stand_in.rs) runs this program with
// cairo-vm. Its only hint is implemented in Rust: it puts an OS-shaped output for the batch
// (state roots, block numbers and hashes, KZG DA segment, messages, state diff; see
// docs/snos.md) in a new memory segment. The program checks that the two header flags are
// booleans and copies the output into the output builtin, so the run yields a real Cairo PIE
// whose fact commits to that output.
//
// The hint also sets header_offset: where the OS header starts in the output. It is 0 for an
// OS run; in aggregator mode (snos-runner's aggregator module) the output is aggregator-shaped
// ([n_children, child segments..., aggregated OS output]) and the header follows the children.
//
// Compile with scripts/compile-cairo.sh (cairo-lang's cairo-compile); the compiled JSON next to
// this file is committed.

%builtins output

from starkware.cairo.common.memcpy import memcpy

// Offsets of the flags in the Starknet OS output header.
const USE_KZG_DA_OFFSET = 8;
const FULL_OUTPUT_OFFSET = 9;

func main{output_ptr: felt*}() {
    alloc_locals;
    local os_output: felt*;
    local n_felts: felt;
    local header_offset: felt;
    %{ stand_in_os_output(ids, segments, memory) %}

    // The flags must be booleans (reading them also fails a run whose header is incomplete).
    let header = os_output + header_offset;
    let use_kzg_da = header[USE_KZG_DA_OFFSET];
    assert use_kzg_da * (use_kzg_da - 1) = 0;
    let full_output = header[FULL_OUTPUT_OFFSET];
    assert full_output * (full_output - 1) = 0;

    memcpy(dst=output_ptr, src=os_output, len=n_felts);
    let output_ptr = output_ptr + n_felts;
    return ();
}
