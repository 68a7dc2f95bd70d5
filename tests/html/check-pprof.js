#!/usr/bin/env node
// Decodes a memlens <kind>.pb.gz with pprof-format (an implementation independent of memlens's encoder)
// and checks it against the expectations the C++ test computed from its input:
//   node check-pprof.js PROFILE.pb.gz EXPECT.json
// EXPECT.json: {sample_types: [{type, unit}], totals: ["<decimal>", ...] (one per sample type),
//   functions: [names that must exist], build_ids: [exact set of non-empty mapping build-ids],
//   modules: [mapping file names that must exist], addresses: ["<decimal>", ...] (exact set of location
//   addresses), time_nanos: "<decimal>", duration_nanos: "<decimal>", pids: ["<decimal>", ...] (exact set)}
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const {Profile} = require('pprof-format');

const [file, expectFile] = process.argv.slice(2);
if (!file || !expectFile) {
  console.error('usage: check-pprof.js PROFILE.pb.gz EXPECT.json');
  process.exit(2);
}
const expect = JSON.parse(fs.readFileSync(expectFile, 'utf8'));
const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
};
const big = (v) => BigInt(v);
const sameSet = (a, b) => a.size === b.size && [...a].every((x) => b.has(x));

const raw = fs.readFileSync(file);
check(raw[0] === 0x1f && raw[1] === 0x8b, 'file is not gzip');
const profile = Profile.decode(zlib.gunzipSync(raw));
const strings = profile.stringTable.strings;
const str = (i) => {
  const s = strings[Number(i)];
  if (s === undefined) failures.push('string index out of range: ' + i);
  return s;
};
check(strings[0] === '', 'string_table[0] is not ""');

// Sample types and the default.
const types = profile.sampleType.map((t) => ({type: str(t.type), unit: str(t.unit)}));
check(JSON.stringify(types) === JSON.stringify(expect.sample_types),
      'sample types ' + JSON.stringify(types) + ' != ' + JSON.stringify(expect.sample_types));
check(types.length > 0 && str(profile.defaultSampleType) === types[0].type, 'default_sample_type is not the first type');
check(big(profile.timeNanos) === big(expect.time_nanos), 'time_nanos ' + profile.timeNanos + ' != ' + expect.time_nanos);
check(big(profile.durationNanos) === big(expect.duration_nanos), 'duration_nanos differs');

// Tables and references.
const functions = new Map(profile.function.map((f) => [big(f.id), f]));
const mappings = new Map(profile.mapping.map((m) => [big(m.id), m]));
const locations = new Map(profile.location.map((l) => [big(l.id), l]));
check(functions.size === profile.function.length && functions.size > 0, 'function ids not unique or none');
check(mappings.size === profile.mapping.length && mappings.size > 0, 'mapping ids not unique or none');
check(locations.size === profile.location.length && locations.size > 0, 'location ids not unique or none');
for (const [id, l] of locations) {
  check(id !== 0n, 'location id 0');
  check(mappings.has(big(l.mappingId)), 'location ' + id + ' has unknown mapping ' + l.mappingId);
  check(l.line.length === 1 && functions.has(big(l.line[0].functionId)), 'location ' + id + ' has no valid function');
}
for (const [, m] of mappings) {
  check(big(m.memoryLimit) > big(m.memoryStart), 'mapping ' + str(m.filename) + ': empty address range');
  check(m.hasFunctions === true, 'mapping ' + str(m.filename) + ': has_functions not set');
}

// Totals, per sample type, and pids.
const totals = types.map(() => 0n);
const pids = new Set();
for (const s of profile.sample) {
  check(s.value.length === types.length, 'sample with ' + s.value.length + ' values');
  s.value.forEach((v, i) => (totals[i] += big(v)));
  check(s.locationId.length > 0, 'sample without locations');
  for (const id of s.locationId) check(locations.has(big(id)), 'sample refers to unknown location ' + id);
  for (const l of s.label) if (str(l.key) === 'pid') pids.add(String(l.num));
}
expect.totals.forEach((t, i) => check(totals[i] === big(t), 'total of ' + (types[i] || {}).type + ' ' + totals[i] + ' != ' + t));
if (expect.pids) check(sameSet(pids, new Set(expect.pids)), 'pids ' + [...pids] + ' != ' + expect.pids);

// Names, build-ids, modules, addresses.
const names = new Set([...functions.values()].map((f) => str(f.name)));
for (const f of expect.functions || []) check(names.has(f), 'function "' + f + '" missing');
const buildIds = new Set([...mappings.values()].map((m) => str(m.buildId)).filter((b) => b));
check(sameSet(buildIds, new Set(expect.build_ids || [])), 'build-ids ' + [...buildIds] + ' != ' + expect.build_ids);
const files = new Set([...mappings.values()].map((m) => str(m.filename)));
for (const f of expect.modules || []) check(files.has(f), 'mapping file "' + f + '" missing');
if (expect.addresses) {
  const addrs = new Set([...locations.values()].map((l) => String(big(l.address))));
  check(sameSet(addrs, new Set(expect.addresses)), 'location addresses differ from the input frames');
}

console.log(`check-pprof: ${file}: ${profile.sample.length} samples, ${locations.size} locations, ` +
            `${functions.size} functions, ${mappings.size} mappings, totals ${totals.join('/')}`);
if (failures.length) {
  for (const f of failures.slice(0, 30)) console.error('FAIL: ' + f);
  process.exit(1);
}
console.log('check-pprof: OK');
