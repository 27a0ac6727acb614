// A separate Node process for the guard tests: `node guard-child.mjs LOG N`
// makes N guarded runs (two at a time) appending to LOG; with `--ask`, one
// production run that asks on the terminal (the pseudo-terminal test).

import { createGuard } from '../node.mjs';

const [log, runs, mode] = process.argv.slice(2);
const guard = await createGuard({
  module: process.env.PRODGUARD_WASM_UNDER_TEST,
  auditLog: log,
  systemDir: null,
  policy: null,
});
if (mode === '--ask') {
  try {
    const value = await guard.run({ kind: 'db.migrate', target: 'orders' }, async () => 'the work ran');
    console.log(`RESULT ${value}`);
  } catch (error) {
    console.log(`REFUSED ${error.code}`);
  }
} else {
  const one = (i) => guard.run({ kind: 'db.migrate', target: `db${i}` }, async () => i);
  for (let i = 0; i < Number(runs); i += 2) {
    await Promise.all(i + 1 < Number(runs) ? [one(i), one(i + 1)] : [one(i)]);
  }
}
