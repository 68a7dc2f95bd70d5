#!/usr/bin/env node
// Decodes a memlens <kind>.pb.gz with pprof-format (independent of memlens's encoder) and prints what an
// integration test compares with report.json, as one JSON line:
//   node pprof-summary.js PROFILE.pb.gz [FUNCTION-SUBSTRING]
// {"sample_types": [{type, unit}], "totals": ["<decimal>", ...] (per sample type), "samples": N,
//  "matching": {"samples": N, "totals": [...], "functions": [names]}}: the samples with a frame whose
// function name contains FUNCTION-SUBSTRING. Exits 1 when the file does not decode or a reference is broken.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const {Profile} = require('pprof-format');

const [file, needle] = process.argv.slice(2);
if (!file) {
  console.error('usage: pprof-summary.js PROFILE.pb.gz [FUNCTION-SUBSTRING]');
  process.exit(2);
}
const raw = fs.readFileSync(file);
if (raw[0] !== 0x1f || raw[1] !== 0x8b) {
  console.error('pprof-summary: not gzip: ' + file);
  process.exit(1);
}
const profile = Profile.decode(zlib.gunzipSync(raw));
const strings = profile.stringTable.strings;
const str = (i) => {
  const s = strings[Number(i)];
  if (s === undefined) throw new Error('string index out of range: ' + i);
  return s;
};
const functions = new Map(profile.function.map((f) => [BigInt(f.id), str(f.name)]));
const locations = new Map(profile.location.map((l) => [BigInt(l.id), l]));
const types = profile.sampleType.map((t) => ({type: str(t.type), unit: str(t.unit)}));
const totals = types.map(() => 0n);
const matchTotals = types.map(() => 0n);
const matchFunctions = new Set();
let matchSamples = 0;
for (const s of profile.sample) {
  if (s.value.length !== types.length) throw new Error('sample with ' + s.value.length + ' values');
  s.value.forEach((v, i) => (totals[i] += BigInt(v)));
  let matched = false;
  for (const id of s.locationId) {
    const loc = locations.get(BigInt(id));
    if (!loc) throw new Error('sample references unknown location ' + id);
    for (const line of loc.line) {
      const name = functions.get(BigInt(line.functionId));
      if (name === undefined) throw new Error('location references unknown function ' + line.functionId);
      if (needle && name.includes(needle)) {
        matched = true;
        matchFunctions.add(name);
      }
    }
  }
  if (matched) {
    matchSamples++;
    s.value.forEach((v, i) => (matchTotals[i] += BigInt(v)));
  }
}
console.log(JSON.stringify({
  sample_types: types,
  totals: totals.map(String),
  samples: profile.sample.length,
  matching: {samples: matchSamples, totals: matchTotals.map(String), functions: [...matchFunctions]},
}));
