#!/usr/bin/env bash
# Compiles contracts/src/*.sol with solc-js (npm `solc`, installed by scripts/anvil.sh) through
# --standard-json, with the EVM version pinned, into contracts/artifacts/<Name>.json
# ({contractName, abi, bytecode, deployedBytecode}). The artifacts are committed; re-run after
# editing a contract and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SOLCJS="$(scripts/anvil.sh solcjs)"
EVM_VERSION="${EVM_VERSION:-cancun}"
mkdir -p contracts/artifacts
node - "$SOLCJS" "$EVM_VERSION" <<'JS'
const fs = require("fs");
const path = require("path");
const [solcPath, evmVersion] = process.argv.slice(2);
const solc = require(solcPath);
const dir = "contracts/src";
const sources = {};
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(dir, f), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input), { import: (p) => {
  const f = path.join(dir, p.replace(/^\.\//, ""));
  return fs.existsSync(f) ? { contents: fs.readFileSync(f, "utf8") } : { error: "not found: " + p };
} }));
const errors = (out.errors || []).filter((e) => e.severity === "error");
for (const e of out.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);
for (const [file, contracts] of Object.entries(out.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // interfaces
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: { solc: solc.version(), evmVersion, optimizerRuns: 200 },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(`contracts/artifacts/${name}.json`, JSON.stringify(artifact, null, 2) + "\n");
    console.log(`compiled ${name} (${c.evm.bytecode.object.length / 2} bytes)`);
  }
}
JS
