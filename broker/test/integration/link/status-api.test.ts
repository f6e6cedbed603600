import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { linkedStandaloneFixture, Region, sleep, waitFor } from './regions.js';

/** The parts of `/api/v1/links` this suite checks (issue 4, "Status and metrics"). */
interface LinksReport {
  fileError: { path: string; reason: string; since: string } | null;
  links: Array<{
    name: string; state: string; lastError: string | null; connectedSince: string | null; bootstraps: number; lastBootstrapAt: string | null;
    controlBytesOut: number; controlBytesIn: number; bytesOut: number; bytesIn: number;
  }>;
}

async function report(region: Region): Promise<LinksReport> {
  return (await region.broker.getJson<LinksReport>('/api/v1/links')).body;
}

async function linkOf(region: Region, name: string): Promise<LinksReport['links'][number]> {
  const found = (await report(region)).links.find((l) => l.name === name);
  if (!found) throw new Error(`region ${region.name} lists no link ${name}`);
  return found;
}

async function metrics(region: Region): Promise<string> {
  return (await fetch(`${region.broker.adminUrl}/metrics`)).text();
}

/** The value of one Prometheus sample (exact label set), or undefined. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Replaces a file atomically, as a ConfigMap update does. */
function replaceFile(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

describe('link status API: connectedSince, misconfigured until a handshake succeeds, links-file errors, metrics', () => {
  let A: Region;
  let B: Region;
  let toB: TcpProxy;
  let toA: TcpProxy;
  const { clients } = linkedStandaloneFixture('us', 'eu', (regions) => ({ A, B, toB, toA } = regions));

  test('connectedSince is the time the current connection became connected, null while it is down', async () => {
    const first = await linkOf(A, 'eu');
    expect(first.state).toBe('connected');
    const since = Date.parse(first.connectedSince ?? '');
    expect(since).not.toBeNaN();
    expect(since).toBeLessThanOrEqual(Date.now());
    await sleep(50);
    expect((await linkOf(A, 'eu')).connectedSince).toBe(first.connectedSince);

    toB.refuse();
    toB.cut();
    await waitFor(async () => (await linkOf(A, 'eu')).state !== 'connected', 'link eu down after the cut');
    expect((await linkOf(A, 'eu')).connectedSince).toBeNull();
    const restoredAt = Date.now();
    toB.restore();
    await waitFor(async () => (await linkOf(A, 'eu')).state === 'connected', 'link eu connected again', 20000);
    const again = Date.parse((await linkOf(A, 'eu')).connectedSince ?? '');
    expect(again).toBeGreaterThanOrEqual(restoredAt);

    const text = await metrics(A);
    expect(sample(text, 'meridian_link_connected_since_timestamp_seconds', 'link="eu"')).toBeCloseTo(again / 1000, 2);
  });

  test('a link misconfigured by the remote (wrong cluster) stays misconfigured across reconnects, and after a links-file change until a handshake succeeds', async () => {
    // `ap` dials region C, which is cluster `zz` (with a link to `us`, so it answers route sync): wrong_cluster.
    const C = new Region('zz');
    await C.start([{ name: 'us', servers: ['127.0.0.1:1'], topics: ['#'] }]);
    const toC = await TcpProxy.start(C.mqttPort);
    try {
      await misconfiguredAcrossReconnects(toC);
    } finally {
      await C.dispose();
      await toC.close();
    }
  });

  async function misconfiguredAcrossReconnects(toC: TcpProxy): Promise<void> {
    const ap = { name: 'ap', servers: [toC.address], topics: ['#'], extra: '    clientIdPrefix: ap-' };
    A.writeLinks([{ name: 'eu', servers: [toB.address], topics: ['#'] }, ap]);
    await waitFor(async () => (await linkOf(A, 'ap')).state === 'misconfigured', 'link ap misconfigured');
    expect((await linkOf(A, 'ap')).lastError).toContain('belong to another cluster');

    // Reconnects (the proxy drops every connection twice) must not show it as connecting in between.
    const states = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        states.add((await linkOf(A, 'ap')).state);
        await sleep(10);
      }
    })();
    for (let i = 0; i < 2; i++) {
      toC.cut();
      await sleep(1200);
    }
    sampling = false;
    await sampler;
    expect([...states]).toEqual(['misconfigured']);
    expect(toC.bytesToTarget).toBeGreaterThan(0);

    // The entry is changed to other servers, not reachable yet: still misconfigured (no handshake succeeded).
    A.writeLinks([{ name: 'eu', servers: [toB.address], topics: ['#'] }, { ...ap, servers: ['127.0.0.1:1'] }]);
    await waitFor(async () => (await linkOf(A, 'ap')).lastError?.includes('before the links file changed') === true, 'link ap restarted with the fixed entry');
    await sleep(1000);
    const fixedButUnreachable = await linkOf(A, 'ap');
    expect(fixedButUnreachable).toMatchObject({ state: 'misconfigured', connectedSince: null });
    expect(fixedButUnreachable.lastError).toContain('belong to another cluster');

    // Removing the link and adding it back as a valid entry: nothing carried over.
    A.writeLinks([{ name: 'eu', servers: [toB.address], topics: ['#'] }]);
    await waitFor(async () => (await report(A)).links.length === 1, 'link ap removed');
    expect((await linkOf(A, 'eu')).state).toBe('connected');
  }

  test('a misconfigured entry that reaches the same remote broker as a running link does not disturb it', async () => {
    const before = await linkOf(A, 'eu');
    expect(before.state).toBe('connected');
    // `zz` dials B (cluster eu) with the default client id prefix: refused as another cluster, and redialled.
    A.writeLinks([{ name: 'eu', servers: [toB.address], topics: ['#'] }, { name: 'zz', servers: [toB.address], topics: ['#'] }]);
    await waitFor(async () => (await linkOf(A, 'zz')).state === 'misconfigured', 'link zz misconfigured');
    const states = new Set<string>();
    for (let i = 0; i < 30; i++) {
      states.add((await linkOf(A, 'eu')).state);
      await sleep(100);
    }
    expect([...states]).toEqual(['connected']);
    expect((await linkOf(A, 'eu')).connectedSince).toBe(before.connectedSince);
    A.writeLinks([{ name: 'eu', servers: [toB.address], topics: ['#'] }]);
    await waitFor(async () => (await report(A)).links.length === 1, 'link zz removed');
  });

  test('a rejected entry that is fixed reports misconfigured until its handshake succeeds, then connected', async () => {
    B.writeLinks([{ name: 'us', servers: ['127.0.0.1:99999'], topics: ['#'] }]);
    await waitFor(async () => (await linkOf(B, 'us')).state === 'misconfigured', 'entry us rejected');
    expect((await linkOf(B, 'us')).lastError).toContain('links[0].servers[0]');

    toA.refuse();
    toA.cut();
    B.writeLinks([{ name: 'us', servers: [toA.address], topics: ['#'] }]);
    await waitFor(async () => (await linkOf(B, 'us')).lastError?.includes('before the links file changed') === true, 'fixed entry running');
    await sleep(800);
    expect(await linkOf(B, 'us')).toMatchObject({ state: 'misconfigured', connectedSince: null });

    toA.restore();
    await waitFor(async () => (await linkOf(B, 'us')).state === 'connected', 'fixed link connected', 20000);
    const connected = await linkOf(B, 'us');
    expect(connected.lastError).toBeNull();
    expect(connected.connectedSince).not.toBeNull();
  });

  test('an unreadable or invalid links file is reported (API and metric) while the previous links keep running', async () => {
    const file = B.linksFile;
    const good = readFileSync(file, 'utf8');
    const fileLabel = `file="${file}"`;
    expect((await report(B)).fileError).toBeNull();
    expect(sample(await metrics(B), 'meridian_link_file_error', fileLabel)).toBe(0);

    replaceFile(file, 'links:\n  - name: us\n    servers: [unclosed\n');
    await waitFor(async () => (await report(B)).fileError !== null, 'invalid YAML reported');
    const invalid = (await report(B)).fileError;
    expect(invalid).toMatchObject({ path: file, reason: expect.stringContaining('not valid YAML') });
    expect(Date.parse(invalid?.since ?? '')).not.toBeNaN();
    expect(sample(await metrics(B), 'meridian_link_file_error', fileLabel)).toBe(1);
    expect(await linkOf(B, 'us')).toMatchObject({ state: 'connected' });

    replaceFile(file, 'links: {}\n');
    await waitFor(async () => (await report(B)).fileError?.reason.includes('links: must be a list') === true, 'not a list reported');

    // Unreadable (a directory where the file was), then the very same good text as before: the error clears.
    rmSync(file);
    mkdirSync(file);
    await waitFor(async () => (await report(B)).fileError?.reason.includes('cannot read the file') === true, 'unreadable file reported', 10000);
    expect(await linkOf(B, 'us')).toMatchObject({ state: 'connected' });
    rmSync(file, { recursive: true });
    writeFileSync(file, good);
    await waitFor(async () => (await report(B)).fileError === null, 'file error cleared', 10000);
    expect(sample(await metrics(B), 'meridian_link_file_error', fileLabel)).toBe(0);
    expect(await linkOf(B, 'us')).toMatchObject({ state: 'connected' });
    expect(path.isAbsolute(file)).toBe(true);
  });

  test('bootstraps, their last time, bytes of route sync and of carriers are in the API and in Prometheus', async () => {
    const sub = await A.client({ clientId: 'status-sub' });
    clients.push(sub);
    const seen: string[] = [];
    sub.on('message', (_t, p) => seen.push(p.toString()));
    const before = (await linkOf(B, 'us'));
    await sub.subscribeAsync('status/#', { qos: 1 });
    await waitFor(async () => (await B.link('us')).routesReceived > 0, 'route of A in B');
    const pub = await B.client({ clientId: 'status-pub' });
    clients.push(pub);
    await pub.publishAsync('status/1', 'hello', { qos: 1 });
    await waitFor(() => seen.length === 1, 'message across');

    const b = await linkOf(B, 'us');
    expect(b.bootstraps).toBeGreaterThan(0);
    expect(Date.parse(b.lastBootstrapAt ?? '')).not.toBeNaN();
    expect(b.bytesOut).toBeGreaterThan(before.bytesOut);
    expect(b.controlBytesOut).toBeGreaterThan(0);
    expect(b.controlBytesIn).toBeGreaterThan(0);
    const text = await metrics(B);
    expect(sample(text, 'meridian_link_last_bootstrap_timestamp_seconds', 'link="us"')).toBeCloseTo(Date.parse(b.lastBootstrapAt ?? '') / 1000, 2);
    expect(sample(text, 'meridian_link_control_bytes_sent_total', 'link="us"')).toBeGreaterThan(0);
    expect(sample(text, 'meridian_link_control_bytes_received_total', 'link="us"')).toBeGreaterThan(0);
    expect(sample(text, 'meridian_link_bytes_sent_total', 'link="us"')).toBe((await linkOf(B, 'us')).bytesOut);
    expect(sample(text, 'meridian_link_remote_agents', 'link="us"')).toBe(1);
    for (const name of ['meridian_link_queue_messages', 'meridian_link_queue_bytes', 'meridian_link_queue_oldest_age_seconds', 'meridian_link_routes_sent',
      'meridian_link_routes_received', 'meridian_link_bootstraps', 'meridian_link_messages_forwarded_total', 'meridian_link_messages_received_total',
      'meridian_link_messages_deduplicated_total', 'meridian_link_bytes_received_total']) {
      expect([name, sample(text, name, 'link="us"')]).toEqual([name, expect.any(Number)]);
    }
  });
});
