import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { openStore, type NodeStore, type StoredPacket } from '../../../src/store/index.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const WRITER = path.join(REPO_ROOT, 'broker/test/integration/store/crash-writer.mjs');
const COMPILED_STORE = path.join(REPO_ROOT, 'dist/broker/src/store/index.js');
/** Acknowledged writes to collect before the kill; the writer runs flat out, so the kill lands mid-commit. */
const ACKS_BEFORE_KILL = 3000;

let root: string;
const children: ChildProcess[] = [];

beforeAll(() => {
  if (!existsSync(COMPILED_STORE)) throw new Error(`${COMPILED_STORE} missing: run npx tsc -p tsconfig.json first`);
  root = mkdtempSync(path.join(tmpdir(), 'store-crash-'));
});
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

/** Runs the writer until it has acknowledged enough writes, kill -9s it, and returns the acknowledged lines. */
function runWriterAndKill(dir: string, durability: string, commitDelayMs: number): Promise<string[][]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dir, durability, String(commitDelayMs)], { env: { ...process.env, NODE_OPTIONS: '' } });
    children.push(child);
    let buffered = '';
    let stderr = '';
    const acked: string[][] = [];
    const giveUp = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? ''; // a line cut by the kill is not an acknowledgement
      for (const line of lines) if (line.startsWith('acked ')) acked.push(line.split(' ').slice(1));
      if (acked.length >= ACKS_BEFORE_KILL && child.signalCode === null) child.kill('SIGKILL');
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(giveUp);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own (code ${code}): ${stderr}`));
      else resolve(acked);
    });
  });
}

async function collect<T>(stream: Readable): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item as T);
  return items;
}

/** Checks every acknowledged write against the reopened store; returns a list of what is missing. */
async function missingAfterReopen(store: NodeStore, acked: string[][]): Promise<string[]> {
  const p = store.persistence;
  const missing: string[] = [];
  const queues = new Map<string, StoredPacket[]>();
  const queueOf = async (clientId: string): Promise<StoredPacket[]> => {
    if (!queues.has(clientId)) queues.set(clientId, await collect<StoredPacket>(p.outgoingStream({ id: clientId })));
    return queues.get(clientId) as StoredPacket[];
  };
  const clearedOut = new Set(acked.filter(([kind]) => kind === 'acked-out').map(([, clientId, i]) => `${clientId}/${i}`));
  const retainedTopics = new Set((await collect<StoredPacket>(p.createRetainedStream('r/#'))).map((r) => r.topic));

  for (const [kind, ...fields] of acked) {
    const [clientId, i, messageId] = fields;
    // The writer numbers message i with messageId (i % 60000) + 1; once its PUBREL is stored, only that identifies it.
    const pubrelId = (Number(i) % 60000) + 1;
    const queued = async (): Promise<StoredPacket | undefined> =>
      (await queueOf(clientId)).find((q) => q.brokerCounter === Number(i) || (q.cmd === 'pubrel' && q.messageId === pubrelId));
    switch (kind) {
      case 'sub':
        if (!(await p.subscriptionsByClient({ id: clientId })).some((s) => s.topic === fields[1])) missing.push(`subscription ${fields}`);
        break;
      case 'queued':
        if (!clearedOut.has(`${clientId}/${i}`) && !(await queued())) missing.push(`queued message ${fields}`);
        break;
      case 'inflight':
        if (!clearedOut.has(`${clientId}/${i}`) && (await queued())?.messageId !== Number(messageId)) missing.push(`in-flight messageId ${fields}`);
        break;
      case 'pubrel':
        if ((await queued())?.cmd !== 'pubrel') missing.push(`PUBREL ${fields}`);
        break;
      case 'session':
        if (!(await p.openSession({ id: fields[0] }))) missing.push(`session ${fields}`);
        break;
      case 'acked-out':
        if (await queued()) missing.push(`deletion of acknowledged message ${fields}`);
        break;
      case 'incoming':
        await p.incomingGetPacket({ id: clientId }, { cmd: 'pubrel', messageId: Number(fields[1]) }).catch(() => missing.push(`QoS 2 incoming ${fields}`));
        break;
      case 'retained':
        if (!retainedTopics.has(fields[0])) missing.push(`retained ${fields}`);
        break;
      case 'will':
        if (!(await p.getWill({ id: fields[0] }))) missing.push(`will ${fields}`);
        break;
      case 'area':
        if ((await store.area('crash').get(fields[0]))?.toString() !== `v${fields[0].slice(1)}`) missing.push(`area entry ${fields}`);
        break;
      default:
        missing.push(`unknown acknowledgement ${kind}`);
    }
  }
  return missing;
}

describe.each([
  ['durable', 0],
  ['durable', 5],
  ['relaxed', 2],
])('kill -9 of a %s store (commitDelayMs %d)', (durability, commitDelayMs) => {
  test('every acknowledged write is there after reopening the same directory', async () => {
    const dir = path.join(root, `${durability}-${commitDelayMs}`);
    const acked = await runWriterAndKill(dir, durability, commitDelayMs);
    expect(acked.length).toBeGreaterThanOrEqual(ACKS_BEFORE_KILL);
    const kinds = new Set(acked.map(([kind]) => kind));
    expect([...kinds].sort()).toEqual(['acked-out', 'area', 'incoming', 'inflight', 'pubrel', 'queued', 'retained', 'session', 'sub', 'will']);

    const store = await openStore({ dir, durability: 'durable', commitDelayMs: 0, maxSizeMb: 256, maxQueuedMessages: 1_000_000, logger: pino({ level: 'silent' }) });
    try {
      expect(store.incarnation).toBe(2);
      await store.persistence.setup({ id: 'checker.2' });
      expect(await missingAfterReopen(store, acked)).toEqual([]);
    } finally {
      await store.close();
    }
  }, 60_000);
});
