#!/usr/bin/env bash
# Whole-transaction gas of compact proofs on anvil (receipts' gasUsed), from a vectors file in the
# layout of the `compact` key of testdata/vectors.json: deploys the verifier of its circuit size
# (src/verifiers/CompactVerifier<S>.sol), a Marketplace harness using it and a randomness source
# that replays the vectors' seeds, opens request 0 under its id, fills its slots as host 0, and
# submits the full batch in the next period. Prints a Markdown table on stdout. Kills anvil by pid.
#
#   script/gas-anvil-compact.sh                              # the committed 4-slot vectors
#   script/gas-anvil-compact.sh ../target/compact-gas-32.json # 32 slots (cargo bench -p hoard-compact --bench compact -- gas)
#   ACCESS_LIST=1 script/gas-anvil-compact.sh …               # the proof sent with an EIP-2930 access
#                                                             # list from eth_createAccessList, as hosts do
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VECTORS=${1:-../testdata/vectors.json}
access_list=()
[[ -z "${ACCESS_LIST:-}" ]] || access_list=(--access-list)

case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
bin() { echo "$PWD/node_modules/@foundry-rs/$1-linux-$arch/bin/$1"; }
FORGE=$(bin forge) ANVIL=$(bin anvil) CAST=$(bin cast)
PORT=${ANVIL_PORT:-$((20000 + RANDOM % 20000))}
RPC=http://127.0.0.1:$PORT
PERIOD=10
"$FORGE" build --quiet

log=$(mktemp)
"$ANVIL" --port "$PORT" --accounts 3 --gas-limit 100000000 >"$log" 2>&1 &
anvil_pid=$!
cleanup() { kill "$anvil_pid" 2>/dev/null || true; wait "$anvil_pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 100); do "$CAST" chain-id --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.1; done

KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
v() { node -e "const c=JSON.parse(require('fs').readFileSync('$VECTORS','utf8')).compact; const x=($1); console.log(typeof x==='string'?x:JSON.stringify(x).replace(/\"/g,''))"; }
HOST=$(v 'c.hosts[0]')
SLOTS=$(v 'c.dataset.slots')
S=$(v 'c.shape.slots')
# The vectors' host is a fixed address: anvil lets us send as it.
"$CAST" rpc --rpc-url "$RPC" anvil_impersonateAccount "$HOST" >/dev/null
"$CAST" rpc --rpc-url "$RPC" anvil_setBalance "$HOST" 0x56BC75E2D63100000 >/dev/null
create() {
  local target=$1
  shift
  local args=()
  (($#)) && args=(--constructor-args "$@")
  "$FORGE" create "$target" --broadcast --rpc-url "$RPC" --private-key "$KEY" --json "${args[@]}" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).deployedTo))'
}
send() { # <from: key or address> <to> <sig> [args...] -> tx hash; SEND_FLAGS: more flags for cast
  local from=$1
  shift
  local who=(--private-key "$from")
  [[ ${#from} -eq 42 ]] && who=(--from "$from" --unlocked)
  "$CAST" send --rpc-url "$RPC" "${who[@]}" ${SEND_FLAGS:-} --json "$@" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
      if (r.status!=="0x1") { console.error("reverted: "+r.transactionHash); process.exit(1); }
      console.log(r.transactionHash)})'
}
gas_of() { "$CAST" receipt --rpc-url "$RPC" "$1" gasUsed; }
block() { "$CAST" block-number --rpc-url "$RPC"; }

ZERO=0x0000000000000000000000000000000000000000
TOKEN=$(create src/token/HoardTestToken.sol:HoardTestToken)
RANDOMNESS=$(create test/utils/FixedRandomness.sol:FixedRandomness)
VERIFIER=$(create "src/verifiers/CompactVerifier$S.sol:CompactVerifier$S")
MARKET=$(create test/utils/MarketplaceHarness.sol:MarketplaceHarness "($TOKEN,$RANDOMNESS,$PERIOD,$PERIOD,3,1000,2500,1000,$ZERO,$VERIFIER)")
RENTER=$("$CAST" wallet address --private-key "$KEY")
for who in "$KEY" "$HOST"; do
  addr=$who
  [[ ${#who} -eq 42 ]] || addr=$RENTER
  send "$who" "$TOKEN" "faucet(address,uint256)" "$addr" 1000000ether >/dev/null
  send "$who" "$TOKEN" "approve(address,uint256)" "$MARKET" "$("$CAST" max-uint)" >/dev/null
done
PARAMS_SIG="(bytes32,bytes32,uint256,uint256,uint64,uint64,uint64,uint64,uint64,uint16,uint16,uint16,uint8,bytes32)"
CELLS=$(v 'c.dataset.cellCount')
params="($(v 'c.dataset.datasetRoot'),$("$CAST" keccak manifest),1,1,$((CELLS * 256)),$CELLS,2592000,86400,1,$SLOTS,$((SLOTS / 2)),$(v 'c.dataset.samples'),1,$(v 'c.dataset.compactRoot'))"
REQUEST=$(v 'c.requests[0].requestId')
send "$KEY" "$MARKET" "requestStorageWithId(bytes32,$PARAMS_SIG)" "$REQUEST" "$params" >/dev/null
send "$KEY" "$RANDOMNESS" "setSeed(bytes32)" "$(v 'c.fillSeed')" >/dev/null
fill_gas=0
for ((i = 0; i < SLOTS; i++)); do
  tx=$(send "$HOST" "$MARKET" "fillCompactSlot(bytes32,uint256,bytes32,bytes32[],bytes,bytes32,bytes32[])" \
    "$REQUEST" "$i" "$(v "c.dataset.slotRoots[$i]")" "$(v "c.dataset.rootPaths[$i]")" \
    "$(v "c.requests[0].fillProofs[$i]")" "$(v "c.dataset.commitments[$i]")" "$(v "c.dataset.commitmentPaths[$i]")")
  fill_gas=$(gas_of "$tx")
done
b=$(block)
"$CAST" rpc --rpc-url "$RPC" anvil_mine "$((PERIOD - b % PERIOD))" >/dev/null
send "$KEY" "$RANDOMNESS" "setSeed(bytes32)" "$(v 'c.seed')" >/dev/null
N=$(v 'Math.max(...c.batches.filter(b=>b.request===0&&b.valid!==false&&b.name.startsWith("valid")).map(b=>b.slots.length))')
ids=$(node -e "
const c=JSON.parse(require('fs').readFileSync('$VECTORS','utf8')).compact;
console.log(JSON.stringify(c.batches.find(b=>b.request===0&&b.name.startsWith('valid')&&b.slots.length===$N).slots))")
slot_ids=$(for i in $(echo "$ids" | tr -d '[]' | tr ',' ' '); do "$CAST" call --rpc-url "$RPC" "$MARKET" "slotId(bytes32,uint256)(bytes32)" "$REQUEST" "$i"; done | paste -sd, -)
proof=$(node -e "
const c=JSON.parse(require('fs').readFileSync('$VECTORS','utf8')).compact;
console.log('['+c.batches.find(b=>b.request===0&&b.name.startsWith('valid')&&b.slots.length===$N).proof.join(',')+']')")
period=$(($(block) / PERIOD))
[[ -z "${ACCESS_LIST:-}" ]] || "$CAST" access-list --rpc-url "$RPC" --from "$HOST" "$MARKET" "submitCompactProof(uint256,bytes32[],uint256[8])" "$period" "[$slot_ids]" "$proof" >&2
tx=$(SEND_FLAGS="${access_list[*]}" send "$HOST" "$MARKET" "submitCompactProof(uint256,bytes32[],uint256[8])" "$period" "[$slot_ids]" "$proof")
gas=$(gas_of "$tx")
# The first proof of a slot writes a fresh marks word (22,100 instead of 5,000 gas, once in 128
# periods per slot): the steady state is 17,100 gas per slot less.
steady=$((gas - N * 17100))
echo "| transaction (circuit S = $S, $N slots${access_list:+, proof with an access list}) | gasUsed | per slot |"
echo "|---|---:|---:|"
echo "| fillCompactSlot (last of $SLOTS, 5 samples) | $fill_gas | |"
echo "| submitCompactProof, first proof of each slot | $gas | $((gas / N)) |"
echo "| submitCompactProof, steady state (less $N × 17,100) | $steady | $((steady / N)) |"
