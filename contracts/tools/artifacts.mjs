#!/usr/bin/env node
// The ABI and bytecode the Rust node binds with alloy's `sol!` macro, committed under artifacts/.
//   node tools/artifacts.mjs write   # refresh artifacts/ from out/ (after `forge build`)
//   node tools/artifacts.mjs check   # fail if artifacts/ differs from out/
// Each file keeps the fields of forge's artifact that bindings need: abi, bytecode.object,
// deployedBytecode.object and methodIdentifiers. foundry.toml turns the metadata hash off, so the
// bytecode is the same on every machine.
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const CONTRACTS = [
  ['Marketplace.sol', 'Marketplace'],
  ['HoardTestToken.sol', 'HoardTestToken'],
  ['BlockHashRandomness.sol', 'BlockHashRandomness'],
];

function fresh(file, name) {
  const path = join(root, 'out', file, `${name}.json`);
  if (!existsSync(path)) throw new Error(`${path} is missing: run forge build first`);
  const a = JSON.parse(readFileSync(path, 'utf8'));
  const artifact = {
    contractName: name,
    abi: a.abi,
    bytecode: { object: a.bytecode.object },
    deployedBytecode: { object: a.deployedBytecode.object },
    methodIdentifiers: a.methodIdentifiers,
  };
  return JSON.stringify(artifact, null, 2) + '\n';
}

const mode = process.argv[2];
if (mode !== 'write' && mode !== 'check') {
  console.error('usage: node tools/artifacts.mjs write|check');
  process.exit(2);
}
mkdirSync(join(root, 'artifacts'), { recursive: true });
let stale = [];
for (const [file, name] of CONTRACTS) {
  const text = fresh(file, name);
  const target = join(root, 'artifacts', `${name}.json`);
  if (mode === 'write') {
    writeFileSync(target, text);
    console.log(`wrote artifacts/${name}.json`);
  } else if (!existsSync(target) || readFileSync(target, 'utf8') !== text) {
    stale.push(`artifacts/${name}.json`);
  }
}
if (stale.length) {
  console.error(`stale: ${stale.join(', ')} differ from a fresh forge build`);
  process.exit(1);
}
