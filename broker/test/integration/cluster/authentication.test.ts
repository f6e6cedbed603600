import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BrokerProcess } from '../../harness/broker-process.js';
import { TestCluster, freePort, type ClusterTable } from '../../harness/cluster.js';

async function waitForLog(process: BrokerProcess, pattern: RegExp, timeoutMs = 10000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const line = process.logs.find((l) => pattern.test(l));
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no log line matching ${pattern}; logs:\n${process.logs.slice(-20).join('\n')}`);
}

describe('cluster authentication between nodes', () => {
  let cluster: TestCluster;
  const intruders: BrokerProcess[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start([{ name: 'core-1', role: 'core' }, { name: 'core-2', role: 'core' }]);
  });
  afterAll(async () => {
    await Promise.all(intruders.map((p) => p.dispose()));
    await cluster?.dispose();
  });

  async function startOutsider(name: string, clusterName: string, secret: string): Promise<BrokerProcess> {
    const secretFile = path.join(cluster.dir, `${name}.secret`);
    writeFileSync(secretFile, secret);
    const port = await freePort();
    const outsider = await BrokerProcess.start({
      nodeName: name,
      args: ['--cluster-name', clusterName, '--cluster-port', String(port), '--cluster-advertise', `127.0.0.1:${port}`,
        '--seeds', cluster.seeds.join(','), '--cluster-secret-file', secretFile],
    });
    intruders.push(outsider);
    return outsider;
  }

  test('a node with the wrong secret is refused with a clear log line on both sides and never joins', async () => {
    const outsider = await startOutsider('wrong-secret', cluster.clusterName, randomBytes(32).toString('base64'));
    expect(await waitForLog(outsider, /cluster peer refused/)).toMatch(/secret/);
    expect(await waitForLog(cluster.node('core-1'), /cluster peer refused/)).toMatch(/secret/);
    const table = (await cluster.node('core-1').getJson<ClusterTable>('/api/v1/cluster')).body;
    expect(table.nodes.map((n) => n.nodeId)).not.toContain('wrong-secret');
  });

  test('a node of another cluster is refused even with the right secret', async () => {
    const { readFileSync } = await import('node:fs');
    const outsider = await startOutsider('other-cluster', 'some-other-cluster', readFileSync(cluster.secretFile, 'utf8'));
    expect(await waitForLog(outsider, /cluster peer refused/)).toMatch(/cluster name/);
    const table = (await cluster.node('core-2').getJson<ClusterTable>('/api/v1/cluster')).body;
    expect(table.nodes.map((n) => n.nodeId)).not.toContain('other-cluster');
  });
});
