#!/usr/bin/env bash
# Deploys the hoard contracts to any RPC URL and writes the deployment file the node reads
# (addresses, chain id, deployment block, period length and the rest of the configuration; see
# docs/contracts.md, "Deployment file").
#
#   script/deploy.sh --rpc-url URL [--private-key KEY] [--out FILE]
#
# The key may also come from $PRIVATE_KEY. Settings come from the environment (PERIOD_LENGTH,
# GRACE_BLOCKS, MAX_MISSED, SLASH_BPS, REPORTER_REWARD_BPS, REPAIR_REWARD_BPS, TOKEN, COMPACT); see
# script/Deploy.s.sol for the defaults. Default output: contracts/deployments/<chain id>.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
rpc="" key=${PRIVATE_KEY:-} out=""
while (($#)); do
  case $1 in
    --rpc-url) rpc=$2; shift 2 ;;
    --private-key) key=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "deploy.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n $rpc ]] || { echo "deploy.sh: set --rpc-url" >&2; exit 2; }
[[ -n $key ]] || { echo "deploy.sh: set --private-key or PRIVATE_KEY" >&2; exit 2; }

case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
FORGE=$PWD/node_modules/@foundry-rs/forge-linux-$arch/bin/forge
CAST=$PWD/node_modules/@foundry-rs/cast-linux-$arch/bin/cast
[[ -x $FORGE ]] || { echo "deploy.sh: forge missing; run 'npm ci' in contracts/ (or scripts/contracts)" >&2; exit 1; }

chain=$("$CAST" chain-id --rpc-url "$rpc")
tmp=deployments/.deploy-$$.json
trap 'rm -f "$tmp"' EXIT
DEPLOYMENT_FILE=$tmp "$FORGE" script script/Deploy.s.sol --rpc-url "$rpc" --private-key "$key" \
  --broadcast --slow --quiet >&2
market=$(node -e 'console.log(require(process.argv[1]).marketplace)' "$PWD/$tmp")
# The script only saw the simulated block; the contract recorded the real one.
block=$("$CAST" call --rpc-url "$rpc" "$market" "deploymentBlock()(uint256)")
out=${out:-deployments/$chain.json}
node -e '
  const fs = require("fs");
  const [src, dst, block] = process.argv.slice(1);
  const d = JSON.parse(fs.readFileSync(src, "utf8"));
  d.deploymentBlock = Number(block);
  const keys = ["chainId", "marketplace", "token", "randomness", "compactVerifierSmall",
    "compactVerifierLarge", "deploymentBlock", "periodLength",
    "graceBlocks", "maxMissed", "slashBps", "reporterRewardBps", "repairRewardBps"];
  fs.writeFileSync(dst, JSON.stringify(Object.fromEntries(keys.map((k) => [k, d[k]])), null, 2) + "\n");
' "$tmp" "$out" "${block%% *}"
echo "$out"
