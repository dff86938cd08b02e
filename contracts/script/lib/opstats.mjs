#!/usr/bin/env node
// Gas by opcode of one transaction's top call frame, and every cold or writing storage access, from
// anvil's debug_traceTransaction (anvil must run with --steps-tracing). Used by
// `TRACE=1 script/gas-anvil.sh` when working on gas.
//   node script/lib/opstats.mjs <rpc url> <tx hash>
const [rpc, tx] = process.argv.slice(2);
const res = await fetch(rpc, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'debug_traceTransaction', params: [tx, {}] }),
});
const { result } = await res.json();
const logs = result.structLogs;
const top = logs.length ? logs[0].depth : 0;
const byOp = {};
const storage = [];
for (const l of logs) {
  if (l.depth !== top) continue;
  byOp[l.op] ??= { n: 0, gas: 0 };
  byOp[l.op].n++;
  byOp[l.op].gas += l.gasCost;
  if ((l.op === 'SSTORE' || l.op === 'SLOAD') && l.gasCost > 200) {
    storage.push(`${l.op} ${l.gasCost} slot=${l.stack[l.stack.length - 1]} pc=${l.pc}`);
  }
}
console.log(`tx ${tx}: gas ${result.gas}, ${logs.length} steps (CALL-family costs include forwarded gas)`);
for (const [op, v] of Object.entries(byOp).sort((a, b) => b[1].gas - a[1].gas).slice(0, 15)) {
  console.log(`  ${op.padEnd(14)} ${String(v.n).padStart(6)} ${String(v.gas).padStart(9)}`);
}
console.log(storage.map((s) => '  ' + s).join('\n'));
