#!/usr/bin/env node
// Runs the compiled tap suites and ends with a plain "N passed, N failed" line, which is
// the summary format the CI log reader understands (tap's own summary is not).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = 'dist/test';
const only = process.argv.slice(2);
const files = only.length
  ? only
  : readdirSync(root, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.test.js'))
      .map((f) => join(root, f))
      .sort();

const tap = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', '--disable-coverage', '-j2', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let passed = 0, failed = 0, skipped = 0, fileFailures = 0, buf = '';
let nestedFailuresInFile = 0;
tap.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    const sub = /^ {4}(not )?ok \d+/.exec(line);
    if (sub) {
      if (/# (SKIP|TODO)/i.test(line)) skipped++;
      else if (sub[1]) { failed++; nestedFailuresInFile++; }
      else passed++;
      continue;
    }
    const top = /^(not )?ok \d+/.exec(line);
    if (top) {
      if (top[1] && nestedFailuresInFile === 0) fileFailures++;
      nestedFailuresInFile = 0;
    }
  }
});
tap.on('close', (code) => {
  failed += fileFailures;
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
