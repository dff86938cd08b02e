#!/usr/bin/env node
// Prints, as shell assignments, what script/gas-anvil.sh needs to replay one proof case of
// testdata/vectors.json on chain: the case's fields, plus a 16-slot dataset (k=10, m=6) whose
// slot `slotIndex` is the case's slot root (the others are fillers), its root and the path.
//   node script/lib/vector-args.mjs <vectors.json> "<case name>"
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [file, name] = process.argv.slice(2);
const vectors = JSON.parse(readFileSync(file, 'utf8'));
const c = vectors.proofs.find((p) => p.name === name);
if (!c) {
  console.error(`no proof case named "${name}" in ${file}`);
  process.exit(1);
}

const hex = (b) => '0x' + Buffer.from(b).toString('hex');
const bytes = (h) => Buffer.from(h.slice(2), 'hex');
const node = (l, r) => createHash('sha256').update(Buffer.concat([Buffer.from([1]), l, r])).digest();

const SLOTS = 16;
const leaves = [];
for (let i = 0; i < SLOTS; i++) {
  leaves.push(i === c.slotIndex ? bytes(c.slotRoot) : createHash('sha256').update(`filler ${i}`).digest());
}
const path = [];
let level = leaves;
let index = c.slotIndex;
while (level.length > 1) {
  path.push(hex(level[index ^ 1]));
  const up = [];
  for (let i = 0; i < level.length; i += 2) up.push(node(level[i], level[i + 1]));
  level = up;
  index >>= 1;
}

const out = {
  REQUEST_ID: c.requestId,
  SLOT_INDEX: c.slotIndex,
  SLOT_ID: c.slotId,
  SLOT_ROOT: c.slotRoot,
  SEED: c.seed,
  SAMPLES: c.samples,
  CELL_COUNT: c.cellCount,
  SLOTS,
  DATASET_ROOT: hex(level[0]),
  ROOT_PATH: `[${path.join(',')}]`,
  PROOF: c.proof,
  PROOF_BYTES: (c.proof.length - 2) / 2,
};
for (const [k, v] of Object.entries(out)) console.log(`${k}='${v}'`);
