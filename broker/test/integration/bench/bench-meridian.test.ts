import { execFile } from 'node:child_process';
import type { PubReport, SubReport } from '../../../src/bench/report.js';
import { BrokerProcess, MERIDIAN_BIN } from '../../harness/broker-process.js';

const TEST_TIMEOUT_MS = 60_000;

function benchJson<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [MERIDIAN_BIN, 'bench', ...args, '--json'], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`meridian bench ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as T);
    });
  });
}

describe('meridian bench against a Meridian node', () => {
  let broker: BrokerProcess;
  let target: string[];

  beforeAll(async () => {
    broker = await BrokerProcess.start({ nodeName: 'bench-target' });
    target = ['--host', '127.0.0.1', '--port', String(broker.mqttPort)];
  }, TEST_TIMEOUT_MS);
  afterAll(async () => {
    await broker?.dispose();
  }, TEST_TIMEOUT_MS);

  test('every QoS delivers all paired messages and reports ordered latency percentiles', async () => {
    for (const qos of ['0', '1', '2']) {
      const report = await benchJson<PubReport>(['pub', ...target, '--count', '2', '--subscribers', '2', '--qos', qos, '--messages', '200', '--e2e-window', '100']);
      expect(report.publish).toMatchObject({ sent: 400, completed: 400, stoppedBy: 'messages' });
      expect(report.receive).toMatchObject({ received: 400, expected: 400, missing: 0 });
      const latency = report.receive?.latencyMs;
      expect(latency?.count).toBe(400);
      if (latency) expect(latency.min <= latency.p50 && latency.p50 <= latency.p99 && latency.p99 <= latency.max).toBe(true);
    }
  }, TEST_TIMEOUT_MS);

  test('sub with the cluster wildcard template subscribes every client', async () => {
    const report = await benchJson<SubReport>(['sub', ...target, '--count', '50', '--interval', '1', '--topic', 't/bench/+/%i/sub/+/#', '--duration', '0']);
    expect(report.subscribe.count).toBe(50);
    expect(report.subscribe.perClientMs?.count).toBe(50);
  }, TEST_TIMEOUT_MS);
});
