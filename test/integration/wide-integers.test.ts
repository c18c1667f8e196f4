/**
 * Integers past 2^53 in handler arguments (issue 22, item 5): the visitor delivers a uint64
 * or int that large as a bigint, which the schema-derived types now say. Before, handlers
 * cast it to number: `query-guest-memory` with such a gpa mixed a bigint into number
 * arithmetic and answered `sevd: internal error`.
 */
import t from 'tap';
import { RawClient } from '../helpers/raw-client.js';
import { startSevd } from '../helpers/sevd-process.js';

t.test('query-guest-memory and clear-faults with integers past 2^53', async (t) => {
  const sevd = await startSevd({ guests: [{ name: 'g', memory: '16M', paused: true }] });
  t.teardown(() => sevd.stop());
  const ctl = await RawClient.connect(sevd.controlPath);
  await ctl.negotiate();
  const far = '1152921504606846977'; // 2^60 + 1: not a double
  const send = async (execute: string, args: string) => {
    ctl.send(`{"execute": "${execute}", "arguments": ${args}}\n`);
    return ctl.nextJson();
  };
  const mem = await send('query-guest-memory', `{"name": "g", "gpa": ${far}}`);
  t.same(mem.return, [], 'nothing is mapped that far up');
  const sized = await send('query-guest-memory', `{"name": "g", "size": ${far}}`);
  t.ok(Array.isArray(sized.return), 'a size past 2^53 covers the whole guest');
  const fault = await send('clear-faults', `{"id": ${far}}`);
  t.equal(fault.error?.desc, `Fault ${far} not found`, 'the id is named exactly');
});
