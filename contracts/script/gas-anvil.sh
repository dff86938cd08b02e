#!/usr/bin/env bash
# Measures whole-transaction gas (receipts' gasUsed) of the Marketplace's hot calls on anvil, using
# the 1 GiB cases of testdata/vectors.json. Starts anvil from the real binary, deploys the
# Marketplace (through a harness that can open a request under a vector's request id) with a
# randomness source that replays the vectors' seeds, sends the transactions with cast, prints a
# Markdown table on stdout and writes the figures to ${GAS_JSON:-out/gas-anvil.json}. Kills anvil by pid.
#
#   script/gas-anvil.sh            # from contracts/ (or anywhere)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
bin() { echo "$PWD/node_modules/@foundry-rs/$1-linux-$arch/bin/$1"; }
FORGE=$(bin forge) ANVIL=$(bin anvil) CAST=$(bin cast)
VECTORS=../testdata/vectors.json
OUT=${GAS_JSON:-out/gas-anvil.json}
PORT=${ANVIL_PORT:-$((20000 + RANDOM % 20000))}
RPC=http://127.0.0.1:$PORT
PERIOD=10

"$FORGE" build --quiet

log=$(mktemp)
"$ANVIL" --port "$PORT" --accounts 10 ${TRACE:+--steps-tracing} >"$log" 2>&1 &
anvil_pid=$!
cleanup() { kill "$anvil_pid" 2>/dev/null || true; wait "$anvil_pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 100); do "$CAST" chain-id --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.1; done

# anvil's well-known dev keys: renter, three hosts, a reporter.
RENTER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
HOST_KEYS=(
  0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
  0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
  0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
)
REPORTER_KEY=0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a

create() { # <contract path:name> [constructor args...] -> address
  local target=$1
  shift
  local args=()
  (($#)) && args=(--constructor-args "$@")
  "$FORGE" create "$target" --broadcast --rpc-url "$RPC" --private-key "$RENTER_KEY" --json "${args[@]}" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).deployedTo))'
}
send() { # <key> <to> <sig> [args...] -> transaction hash; fails if the transaction reverted
  local key=$1
  shift
  "$CAST" send --rpc-url "$RPC" --private-key "$key" --json "$@" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
      if (r.status!=="0x1") { console.error("reverted: "+r.transactionHash); process.exit(1); }
      console.log(r.transactionHash)})'
}
gas_of() { "$CAST" receipt --rpc-url "$RPC" "$1" gasUsed; }
calldata_of() { local input; input=$("$CAST" tx --rpc-url "$RPC" "$1" input); echo $(((${#input} - 2) / 2)); }
block() { "$CAST" block-number --rpc-url "$RPC"; }
to_next_period() { # mines until the current block is the first of a new period
  local b
  b=$(block)
  "$CAST" rpc --rpc-url "$RPC" anvil_mine "$((PERIOD - b % PERIOD))" >/dev/null
}
addr_of() { "$CAST" wallet address --private-key "$1"; }

PARAMS_SIG="(bytes32,bytes32,uint256,uint256,uint64,uint64,uint64,uint64,uint64,uint16,uint16,uint16,uint8,bytes32)"
ZERO=0x0000000000000000000000000000000000000000
ZERO32=0x0000000000000000000000000000000000000000000000000000000000000000
results=()
record() { # <key> <tx hash> <proof bytes>
  results+=("$1 $(gas_of "$2") $(calldata_of "$2") $3")
}

TOKEN=$(create src/token/HoardTestToken.sol:HoardTestToken)
RANDOMNESS=$(create test/utils/FixedRandomness.sol:FixedRandomness)
MARKET=$(create test/utils/MarketplaceHarness.sol:MarketplaceHarness "($TOKEN,$RANDOMNESS,$PERIOD,$PERIOD,3,1000,2500,1000,$ZERO,$ZERO)")
LIB=$(create test/utils/LibHarness.sol:LibHarness)
for key in "$RENTER_KEY" "${HOST_KEYS[@]}" "$REPORTER_KEY"; do
  send "$key" "$TOKEN" "faucet(address,uint256)" "$(addr_of "$key")" 1000000ether >/dev/null
  send "$key" "$TOKEN" "approve(address,uint256)" "$MARKET" "$("$CAST" max-uint)" >/dev/null
done
# Hosts announce themselves on start, before they fill anything (a 38-byte peer id, two addresses).
for key in "${HOST_KEYS[@]}"; do
  peer=0x0024080112$(printf '%064x' "$RANDOM$RANDOM")
  tx=$(send "$key" "$MARKET" "announceHost(bytes,bytes[])" "${peer:0:78}" \
    "[0x047f000001062328,0x047f0000010691cc03cc03]")
done
record "announceHost" "$tx" 0


# Open and fill one request per case. Each host fills its first slot (the costliest fill).
cases=("1 GiB slot, 5 samples" "1 GiB slot, 16 samples" "one block, 1 sample")
keys=(gib5 gib16 block1)
declare -A SLOT PROOF SEED SAMPLES_OF CELLS_OF ROOT_OF PROOF_BYTES_OF REQUEST_OF
for i in 0 1 2; do
  eval "$(node script/lib/vector-args.mjs "$VECTORS" "${cases[$i]}")"
  k=${keys[$i]}
  SLOT[$k]=$SLOT_ID PROOF[$k]=$PROOF SEED[$k]=$SEED SAMPLES_OF[$k]=$SAMPLES CELLS_OF[$k]=$CELL_COUNT
  ROOT_OF[$k]=$SLOT_ROOT PROOF_BYTES_OF[$k]=$PROOF_BYTES REQUEST_OF[$k]=$REQUEST_ID
  send "$RENTER_KEY" "$RANDOMNESS" "setSeed(bytes32)" "$SEED" >/dev/null
  params="($DATASET_ROOT,$(
    "$CAST" keccak manifest
  ),1,1000,$((CELL_COUNT * 256)),$CELL_COUNT,2592000,86400,1,$SLOTS,6,$SAMPLES,0,$ZERO32)"
  tx=$(send "$RENTER_KEY" "$MARKET" "requestStorageWithId(bytes32,$PARAMS_SIG)" "$REQUEST_ID" "$params")
  [[ $k == gib16 ]] && record "requestStorage (16 slots)" "$tx" 0
  tx=$(send "${HOST_KEYS[$i]}" "$MARKET" "fillSlot(bytes32,uint256,bytes32,bytes32[],bytes)" \
    "$REQUEST_ID" "$SLOT_INDEX" "$SLOT_ROOT" "$ROOT_PATH" "$PROOF")
  record "fillSlot ($k)" "$tx" "$PROOF_BYTES"
  [[ -n ${TRACE:-} ]] && node script/lib/opstats.mjs "$RPC" "$tx" >&2
done

# The proof's own share of a fill: its verification (estimated alone, minus the base cost and the
# probe's calldata) and its bytes in the fill's calldata.
probe_input=$("$CAST" calldata "verifyChallenge(bytes32,uint256,bytes32,bytes32,uint256,bytes)" \
  "${ROOT_OF[block1]}" "${CELLS_OF[block1]}" "${SEED[block1]}" "${SLOT[block1]}" "${SAMPLES_OF[block1]}" "${PROOF[block1]}")
probe_gas=$("$CAST" estimate --rpc-url "$RPC" "$LIB" "$probe_input")

# Next period: both 1 GiB hosts prove; the one-block host misses.
to_next_period
for i in 0 1; do
  k=${keys[$i]}
  send "$RENTER_KEY" "$RANDOMNESS" "setSeed(bytes32)" "${SEED[$k]}" >/dev/null
  tx=$(send "${HOST_KEYS[$i]}" "$MARKET" "submitProof(bytes32,bytes)" "${SLOT[$k]}" "${PROOF[$k]}")
  record "submitProof ($k)" "$tx" "${PROOF_BYTES_OF[$k]}"
done
send "$RENTER_KEY" "$RANDOMNESS" "setSeed(bytes32)" "${SEED[block1]}" >/dev/null
# Three marks against the one-block slot: a new reporter, a reporter with rewards, the eviction.
labels=("markProofMissing (first reward of the reporter)" "markProofMissing" "markProofMissing (evicts)")
for m in 0 1 2; do
  period=$(($(block) / PERIOD))
  to_next_period
  tx=$(send "$REPORTER_KEY" "$MARKET" "markProofMissing(bytes32,uint256)" "${SLOT[block1]}" "$period")
  record "${labels[$m]}" "$tx" 0
  [[ -n ${TRACE:-} ]] && node script/lib/opstats.mjs "$RPC" "$tx" >&2
done

# The renter buys 30 more days for the 16-slot request while it runs (escrow already approved).
tx=$(send "$RENTER_KEY" "$MARKET" "extendRequest(bytes32,uint256)" "${REQUEST_OF[gib16]}" 2592000)
record "extendRequest (16 slots, 30 days)" "$tx" 0

# Past the end of every request (they were never fully filled, so they are Cancelled): withdrawals.
"$CAST" rpc --rpc-url "$RPC" evm_increaseTime 2678400 >/dev/null
"$CAST" rpc --rpc-url "$RPC" evm_mine >/dev/null
tx=$(send "${HOST_KEYS[1]}" "$MARKET" "withdrawSlot(bytes32)" "${SLOT[gib16]}")
record "withdrawSlot" "$tx" 0
tx=$(send "$RENTER_KEY" "$MARKET" "withdrawRequest(bytes32)" "$REQUEST_ID")
record "withdrawRequest" "$tx" 0
tx=$(send "$REPORTER_KEY" "$MARKET" "withdrawReward()")
record "withdrawReward" "$tx" 0

node - "$OUT" "$probe_gas" "$probe_input" "${PROOF[block1]}" "${results[@]}" <<'JS'
const [out, probeGas, probeInput, blockProof, ...rows] = process.argv.slice(2);
// Standard (pre-floor) calldata gas: 16 per non-zero byte, 4 per zero byte.
const calldataGas = (hex) => {
  let g = 0;
  for (let i = 2; i < hex.length; i += 2) g += hex.slice(i, i + 2) === '00' ? 4 : 16;
  return g;
};
const fs = require('fs');
const figures = {};
console.log('| transaction | gasUsed | calldata bytes | proof bytes | gas per sample |');
console.log('|---|---:|---:|---:|---:|');
for (const row of rows) {
  const m = row.match(/^(.*) (\d+) (\d+) (\d+)$/);
  const [, name, gas, calldata, proof] = m;
  const samples = name.includes('gib16') ? 16 : name.includes('gib5') ? 5 : name.includes('block1') ? 1 : 0;
  const perSample = name.startsWith('submitProof') && samples ? Math.round(gas / samples) : '';
  figures[name] = { gasUsed: +gas, calldataBytes: +calldata, proofBytes: +proof };
  console.log(`| ${name} | ${gas} | ${calldata} | ${proof || ''} | ${perSample} |`);
}
// The one-block, 1-sample proof's own share of its fill: its bytes in calldata, plus its
// verification (estimated alone, less the base cost and the probe's own calldata).
const verifyExec = +probeGas - 21000 - calldataGas(probeInput);
const proofCalldata = calldataGas(blockProof);
const fill = figures['fillSlot (block1)'].gasUsed;
figures.fillSlotWithoutProof = { gasUsed: fill - verifyExec - proofCalldata, proofVerification: verifyExec,
  proofCalldata };
console.log(`| fillSlot (block1) without its proof (${proofCalldata} calldata + ~${verifyExec} verification) | ` +
  `${fill - verifyExec - proofCalldata} | | | |`);
fs.writeFileSync(out, JSON.stringify(figures, null, 2) + '\n');
JS
