import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ConnReport, PubReport, SubReport } from '../../../src/bench/report.js';
import type { Distribution } from '../../../src/bench/stats.js';
import { freePort, MosquittoProcess } from './mosquitto.js';

const MAIN = resolve('dist/broker/src/cli/main.js');
// Generous: other processes share the CPU; every bench run below is bounded by its own flags.
const TEST_TIMEOUT_MS = 60_000;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function bench(args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(process.execPath, [MAIN, 'bench', ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

async function benchJson<T>(args: string[]): Promise<T> {
  const result = await bench([...args, '--json']);
  if (result.code !== 0) throw new Error(`meridian bench ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

function expectOrdered(d: Distribution | undefined, count: number): void {
  expect(d).toBeDefined();
  if (!d) return;
  expect(d.count).toBe(count);
  const ordered = [d.min, d.p50, d.p90, d.p95, d.p99, d.p999, d.max];
  expect([...ordered].sort((a, b) => a - b)).toEqual(ordered);
  expect(d.min).toBeGreaterThanOrEqual(0);
  expect(d.mean).toBeGreaterThanOrEqual(d.min);
  expect(d.mean).toBeLessThanOrEqual(d.max);
}

async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('meridian bench against mosquitto', () => {
  let mosquitto: MosquittoProcess;
  let dir: string;
  let target: string[];

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build with npx tsc -p tsconfig.json first`);
    mosquitto = await MosquittoProcess.start();
    dir = mkdtempSync(join(tmpdir(), 'bench-cli-'));
    target = ['--host', '127.0.0.1', '--port', String(mosquitto.port)];
  }, TEST_TIMEOUT_MS);
  afterAll(async () => {
    await mosquitto?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, TEST_TIMEOUT_MS);

  test('conn opens every connection and reports ordered connect-time percentiles', async () => {
    const report = await benchJson<ConnReport>(['conn', ...target, '--count', '50', '--interval', '1', '--hold', '0.2']);
    expect(report.command).toBe('conn');
    expect(report.connect.count).toBe(50);
    expectOrdered(report.connect.perClientMs, 50);
    expect(report.heldMs).toBeGreaterThanOrEqual(150);
  }, TEST_TIMEOUT_MS);

  test('pub with paired subscribers delivers every QoS 1 and QoS 2 message and reports latency', async () => {
    for (const qos of ['1', '2']) {
      const report = await benchJson<PubReport>(['pub', ...target, '--count', '3', '--subscribers', '3', '--qos', qos, '--messages', '300', '--duration', '20']);
      expect(report.publish).toMatchObject({ publishers: 3, sent: 900, completed: 900, stoppedBy: 'messages' });
      expect(report.subscribe?.count).toBe(3);
      expect(report.receive).toMatchObject({ received: 900, expected: 900, missing: 0, withoutHeader: 0 });
      expectOrdered(report.receive?.latencyMs, 900);
      expect(report.receive?.ratePerSec).toBeGreaterThan(0);
    }
  }, TEST_TIMEOUT_MS);

  test('pub fans out to every subscriber whose wildcard filter matches', async () => {
    const report = await benchJson<PubReport>([
      'pub', ...target, '--count', '2', '--topic', 'fan/%i/x', '--subscribers', '3', '--sub-topic', 'fan/+/#', '--qos', '1', '--messages', '100',
    ]);
    expect(report.publish.sent).toBe(200);
    expect(report.receive).toMatchObject({ received: 600, expected: 600, missing: 0 });
  }, TEST_TIMEOUT_MS);

  test('pub --rate paces each publisher and --e2e-window keeps the run lossless', async () => {
    const report = await benchJson<PubReport>(['pub', ...target, '--count', '2', '--rate', '200', '--duration', '1', '--subscribers', '2', '--e2e-window', '50']);
    expect(report.publish.stoppedBy).toBe('duration');
    expect(report.publish.sent).toBeGreaterThanOrEqual(2 * 180);
    expect(report.publish.sent).toBeLessThanOrEqual(2 * 202);
    expect(report.receive?.received).toBe(report.publish.sent);
  }, TEST_TIMEOUT_MS);

  test('sub with the cluster wildcard template receives a separate pub run and times it from the payload', async () => {
    const ready = join(dir, 'sub-ready');
    const subArgs = ['sub', ...target, '--count', '4', '--topic', 't/bench/+/%i/sub/+/#', '--qos', '1', '--duration', '20', '--messages', '40', '--ready-file', ready, '--json'];
    const sub = spawn(process.execPath, [MAIN, 'bench', ...subArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    sub.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((r) => sub.once('exit', r));
    try {
      await waitForFile(ready, 15_000);
      expect(JSON.parse(readFileSync(ready, 'utf8'))).toMatchObject({ subscriptions: 4 });
      const pub = await benchJson<PubReport>(['pub', ...target, '--count', '4', '--topic', 't/bench/eu/%i/sub/dev/x', '--qos', '1', '--messages', '10']);
      expect(pub.publish.completed).toBe(40);
      expect(await exited).toBe(0);
    } finally {
      if (sub.exitCode === null) sub.kill('SIGKILL');
    }
    const report = JSON.parse(stdout) as SubReport;
    expect(report.subscribe.count).toBe(4);
    expect(report.subscriptions).toBe(4);
    expectOrdered(report.subscribe.perClientMs, 4);
    expect(report.receive).toMatchObject({ received: 40, withoutHeader: 0 });
    expectOrdered(report.receive.latencyMs, 40);
  }, TEST_TIMEOUT_MS);

  test('sub with several --topic flags subscribes each client to all of them', async () => {
    const report = await benchJson<SubReport>(['sub', ...target, '--count', '5', '--topic', 'multi/%i/a', '--topic', 'multi/%c/+', '--duration', '0']);
    expect(report.subscribe.count).toBe(5);
    expect(report.subscriptions).toBe(10);
  }, TEST_TIMEOUT_MS);

  test('a connection failure exits 1 with a message naming the client and the address', async () => {
    const port = await freePort();
    const result = await bench(['conn', '--host', '127.0.0.1', '--port', String(port), '--count', '3', '--connect-timeout', '5']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`could not connect to 127.0.0.1:${port}`);
    expect(result.stderr).toMatch(/ECONNREFUSED/);
    expect(result.stdout).toBe('');
  }, TEST_TIMEOUT_MS);

  test('a bad flag exits 2 with a usage message', async () => {
    const result = await bench(['pub', '--qos', '7']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--qos must be <= 2/);
  });
});
