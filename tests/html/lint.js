#!/usr/bin/env node
// Lints the HTML report's script with ESLint (eslint.config.js beside this file):
//   node lint.js FILE.js...
// Exit 77 (skipped) when ESLint is not installed (scripts/test-prepare.sh installs it), except under
// CI=true, where a missing linter fails.
'use strict';
const path = require('path');

let ESLint;
try {
  ({ESLint} = require('eslint'));
} catch (e) {
  const why = `ESLint is not installed in ${__dirname}/node_modules (run scripts/test-prepare.sh): ${e.message}`;
  if (process.env.CI === 'true') {
    console.error(why);
    process.exit(1);
  }
  console.log(`skipped: ${why}`);
  process.exit(77);
}

async function main() {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error('usage: lint.js FILE.js...');
    process.exit(2);
  }
  // The base path is the repository root, so the config applies to files outside tests/html.
  const eslint = new ESLint({
    cwd: path.resolve(__dirname, '../..'),
    overrideConfigFile: path.join(__dirname, 'eslint.config.js'),
  });
  const results = await eslint.lintFiles(files.map((f) => path.resolve(f)));
  const text = (await eslint.loadFormatter('stylish')).format(results);
  if (text) console.log(text);
  const problems = results.reduce((n, r) => n + r.errorCount + r.warningCount, 0);
  console.log(`${files.length} file(s) linted, ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
