import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const SUITE = path.join(REPO_ROOT, 'broker/test/integration/store/abstract-suite.mjs');
const COMPILED_STORE = path.join(REPO_ROOT, 'dist/broker/src/store/index.js');

interface RunResult { code: number | null; output: string }

function runNodeTest(file: string, env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', file], { cwd: REPO_ROOT, env: { ...process.env, NODE_OPTIONS: '', ...env } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function summaryCount(output: string, name: string): number {
  const match = new RegExp(`^# ${name} (\\d+)$`, 'm').exec(output);
  if (!match) throw new Error(`no "# ${name}" line in node --test output:\n${output.slice(-2000)}`);
  return Number(match[1]);
}

describe.each([
  ['durable', '0'],
  ['relaxed', '2'],
])('aedes-persistence abstract suite against the %s store (commitDelayMs %s)', (durability, commitDelayMs) => {
  test('every abstract case passes', async () => {
    if (!existsSync(COMPILED_STORE)) throw new Error(`${COMPILED_STORE} missing: run npx tsc -p tsconfig.json first`);
    const { code, output } = await runNodeTest(SUITE, { STORE_DURABILITY: durability, STORE_COMMIT_DELAY_MS: commitDelayMs });
    const failures = output.split('\n').filter((line) => line.startsWith('not ok'));
    expect(failures).toEqual([]);
    expect(summaryCount(output, 'fail')).toBe(0);
    expect(summaryCount(output, 'cancelled')).toBe(0);
    expect(summaryCount(output, 'pass')).toBeGreaterThanOrEqual(50);
    expect(code).toBe(0);
  }, 120_000);
});
