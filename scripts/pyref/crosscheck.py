#!/usr/bin/env python3
"""Recomputes the orchestrator's DA results with independent references and compares.

Usage: crosscheck.py {compression,fft,kzg} INPUT.json

The Rust tests in orchestrator/tests/it/blob_pyref.rs write INPUT.json (seeded inputs plus the
Rust answers); this script recomputes with
  - cairo-lang: starkware/starknet/core/os/data_availability/compression.py (compress,
    decompress), starkware/starknet/core/aggregator/output_parser.py (packed da_word),
    starkware/python/math_utils.py (fft);
  - ckzg (PyPI c-kzg bindings) with the Ethereum trusted setup shipped by eth_account.
Exit code 0 when everything matches, 1 otherwise (the first mismatches are printed).
"""

import json
import os
import sys

BLS_MODULUS = 52435875175126190479447740508185965837690552500527637822603658699938581184513
# EIP-4844 primitive 4096-th root of unity.
OMEGA = 39033254847818212395286706435128746857159659164139250548781411570340225835782


def h(x: str) -> int:
    return int(x, 16)


class Report:
    def __init__(self, name):
        self.name = name
        self.checked = 0
        self.failures = []

    def check(self, ok, what):
        self.checked += 1
        if not ok:
            self.failures.append(what)

    def finish(self):
        for f in self.failures[:10]:
            print(f"MISMATCH [{self.name}] {f}")
        print(f"{self.name}: {self.checked - len(self.failures)} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


def check_compression(payload):
    from starkware.starknet.core.aggregator.output_parser import ContractChanges
    from starkware.starknet.core.os.data_availability.compression import compress, decompress

    r = Report("compression")
    lengths = []
    for i, case in enumerate(payload["cases"]):
        data = [h(x) for x in case["data"]]
        ours = [h(x) for x in case["compressed"]]
        lengths.append(len(data))
        ref = compress(data)
        r.check(ref == ours, f"case {i} (len {len(data)}): compress differs")
        r.check(decompress(iter(ours)) == data, f"case {i}: cairo-lang cannot decompress ours")
    for i, w in enumerate(payload["da_words"]):
        ref = ContractChanges.encode_packed_header(
            n_updates=int(w["n"]),
            prev_nonce=None,
            new_nonce=int(w["nonce"]),
            class_updated=int(w["class"]),
        )
        r.check(ref == h(w["word"]), f"da_word {i} {w}: cairo-lang gives {hex(ref)}")
    print(f"compression: {len(lengths)} felt lists, lengths {min(lengths)}..{max(lengths)}, "
          f"{len(payload['da_words'])} packed da_words")
    return r.finish()


def bitrev(i, bits):
    return int(format(i, f"0{bits}b")[::-1], 2)


def check_fft(payload):
    from starkware.python.math_utils import fft, ifft

    r = Report("fft")
    for i, case in enumerate(payload["cases"]):
        coeffs = [h(x) for x in case["coefficients"]]
        coeffs += [0] * (4096 - len(coeffs))
        blob = bytes.fromhex(case["blob"])
        ours = [int.from_bytes(blob[32 * j: 32 * j + 32], "big") for j in range(4096)]
        # Our blob order = cairo-lang's fft with bit_reversed=True: value i is P(w^bitrev12(i)).
        ref = [int(v) for v in fft(coeffs, OMEGA, BLS_MODULUS, bit_reversed=True)]
        r.check(ref == ours, f"case {i}: fft(bit_reversed=True) differs")
        # With bit_reversed=False cairo-lang gives natural order: natural[j] = ours[bitrev(j)].
        natural = [int(v) for v in fft(coeffs, OMEGA, BLS_MODULUS)]
        r.check(all(natural[j] == ours[bitrev(j, 12)] for j in range(4096)),
                f"case {i}: natural-order relation differs")
        back = [int(v) for v in ifft(ours, OMEGA, BLS_MODULUS, coeffs_bit_reversed=True)]
        r.check(back == coeffs, f"case {i}: ifft(coeffs_bit_reversed=True) does not give the coefficients")
    return r.finish()


def trusted_setup_path():
    env = os.environ.get("ORCH_TRUSTED_SETUP")
    if env:
        return env
    import eth_account

    return os.path.join(os.path.dirname(eth_account.__file__),
                        "typed_transactions", "blob_transactions", "kzg_trusted_setup.txt")


def check_kzg(payload):
    import ckzg

    setup = ckzg.load_trusted_setup(trusted_setup_path(), 0)
    r = Report("kzg")
    for i, case in enumerate(payload["cases"]):
        blob = bytes.fromhex(case["blob"])
        c = bytes.fromhex(case["commitment"])
        proof = bytes.fromhex(case["proof"])
        z = bytes.fromhex(case["z"])
        y = bytes.fromhex(case["y"])
        pp = bytes.fromhex(case["point_proof"])
        r.check(ckzg.blob_to_kzg_commitment(blob, setup) == c, f"case {i}: commitment differs")
        r.check(ckzg.verify_blob_kzg_proof(blob, c, proof, setup), f"case {i}: blob proof rejected")
        r.check(ckzg.compute_blob_kzg_proof(blob, c, setup) == proof, f"case {i}: blob proof differs")
        ref_pp, ref_y = ckzg.compute_kzg_proof(blob, z, setup)
        r.check(ref_pp == pp and ref_y == y, f"case {i}: point proof / y differ")
        r.check(ckzg.verify_kzg_proof(c, z, y, pp, setup), f"case {i}: point proof rejected")
        cells, cell_proofs = ckzg.compute_cells_and_kzg_proofs(blob, setup)
        ours_cells = [bytes.fromhex(p) for p in case["cell_proofs"]]
        r.check(list(cell_proofs) == ours_cells, f"case {i}: cell proofs differ")
        r.check(ckzg.verify_cell_kzg_proof_batch([c] * 128, list(range(128)), cells, ours_cells, setup),
                f"case {i}: cell proofs rejected")
    return r.finish()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("compression", "fft", "kzg"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[2]) as f:
        payload = json.load(f)
    return {"compression": check_compression, "fft": check_fft, "kzg": check_kzg}[sys.argv[1]](payload)


if __name__ == "__main__":
    sys.exit(main())
