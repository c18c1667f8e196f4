/**
 * docs/qmp-reference.md is generated from schema/ (test/tools/qmp-doc.ts): regenerated in
 * memory here, so a schema change without `npm run docs` fails instead of leaving the
 * reference wrong.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { QMP_REFERENCE, renderQmpReference } from '../tools/qmp-doc.js';
import { schema } from '../../schema/index.js';

t.test('docs/qmp-reference.md matches the schema', async (t) => {
  const fresh = renderQmpReference();
  t.ok(fresh.includes('#### `guest-add`') && fresh.includes('#### `query-sev`') && fresh.includes('#### `STOP`'), 'the generator sees the schema');
  t.ok(readFileSync(QMP_REFERENCE, 'utf8') === fresh, 'docs/qmp-reference.md is stale: run npm run docs');
});

t.test('a schema change shows (the check can fail)', async (t) => {
  const changed = renderQmpReference([...schema, { command: 'x-new', monitors: ['guest'] }]);
  t.not(changed, renderQmpReference(), 'a new command changes the reference');
});
