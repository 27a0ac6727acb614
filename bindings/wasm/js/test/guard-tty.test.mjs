// The typed confirmation through a real pseudo-terminal: script(1) gives the
// child its controlling terminal, and the answer is typed once the prompt is
// on the screen, as a person does (as tests/support/prompt.rs does for Rust).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { assertVerifies, tempDir } from '../test-support/guard.mjs';
import { wasmPath } from '../test-support/wasm.mjs';

const PROMPT_END = 'anything else cancels.';
const child = fileURLToPath(new URL('../test-support/guard-child.mjs', import.meta.url));
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

/** Runs one production run on a pseudo-terminal, typing `answer` after the prompt; answers the screen. */
function typeWhenAsked(log, answer) {
  const command = [process.execPath, child, log, '1', '--ask'].map((word) => `'${word.replace(/'/g, "'\\''")}'`).join(' ');
  return new Promise((resolve, reject) => {
    const proc = spawn('script', ['-qec', command, '/dev/null'], {
      // A person's shell: no CI or agent variable, production declared.
      env: { PATH: process.env.PATH, HOME: process.env.HOME ?? '/', TERM: 'dumb', APP_ENV: 'production', USER: 'alice', PRODGUARD_WASM_UNDER_TEST: wasmPath },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    let typed = false;
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`timed out; screen so far:\n${screen}`)); }, 30_000);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (text) => {
      screen += text;
      if (!typed && screen.includes(PROMPT_END)) {
        typed = true;
        proc.stdin.write(`${answer}\n`);
      }
    });
    proc.stderr.on('data', (text) => { screen += text; });
    proc.on('error', reject);
    proc.on('close', () => {
      clearTimeout(timer);
      resolve(screen);
    });
  });
}

test('a person types the target on the terminal: the work runs, and the intent says `typed`', { skip: !hasScript && 'script(1) is missing' }, async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'audit.jsonl');
  const screen = await typeWhenAsked(log, 'orders');
  assert.match(screen, /prodguard: `db\.migrate` on `orders` in production \(tier production\) needs your confirmation\./);
  assert.match(screen, /Why: the environment is production/);
  assert.match(screen, /type the target's name `orders` and press Enter/);
  assert.match(screen, /prodguard: confirmed\./);
  assert.match(screen, /RESULT the work ran/);
  const [intent, outcome] = assertVerifies(t, log);
  assert.equal(intent.kind, 'intent');
  assert.equal(intent.confirm.method, 'typed');
  assert.equal(intent.actor.kind, 'human');
  assert.equal(outcome.outcome.status, 'ok');
});

test('a wrong answer on the terminal is refused (121) and the work does not run', { skip: !hasScript && 'script(1) is missing' }, async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'audit.jsonl');
  const screen = await typeWhenAsked(log, 'order');
  assert.match(screen, /that does not match; cancelled/);
  assert.match(screen, /REFUSED 121/);
  assert.doesNotMatch(screen, /RESULT/);
  const [record] = assertVerifies(t, log);
  assert.equal(record.kind, 'refusal');
});
