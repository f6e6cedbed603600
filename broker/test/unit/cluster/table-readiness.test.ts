import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { Membership } from '../../../src/cluster/membership.js';
import type { NodeRole } from '../../../src/cluster/transport/index.js';
import { RememberedMembers } from '../../../src/cluster/remembered-members.js';
import { TableReadiness, type RegionalTableView } from '../../../src/cluster/table-readiness.js';
import { regionalClusterPolicy, RouteSync } from '../../../src/routesync/index.js';
import { openStore, type NodeStore } from '../../../src/store/index.js';

const logger = pino({ level: 'silent' });
const ROLES = new Set(['core', 'replicant', 'agent']);

function hub(actor: string, role: string, incarnation = 1): RouteSync {
  return new RouteSync({ cluster: 'c', actor, incarnation, role, policy: regionalClusterPolicy, ttlMs: 15_000 });
}

/** Delivers every message the hubs produce until none is left (route sync in memory, no transport). */
function pump(hubs: Map<string, RouteSync>, now = 0): void {
  for (let round = 0; round < 50; round++) {
    let moved = 0;
    for (const [from, h] of hubs) {
      h.tick(now);
      for (const { to, message } of h.takeOutgoing()) {
        hubs.get(to)?.receive(from, message, now);
        moved++;
      }
    }
    if (moved === 0) return;
  }
  throw new Error('route sync did not settle');
}

function up(membership: Membership, nodeId: string, role: NodeRole, incarnation = 1): void {
  membership.up({ nodeId, role, incarnation, address: `${nodeId}:4370`, clusterName: 'c', remoteAddress: '127.0.0.1:1', direction: 'outbound', session: 'new' });
}

/** A replicant's view: its upstream is the first connected core. */
function replicantView(sync: RouteSync, membership: Membership, settled = true): RegionalTableView {
  return {
    sync, membership, needsSource: true, discoverySettled: () => settled,
    tableSources: () => membership.connectedCores().slice(0, 1).map((m) => m.nodeId),
  };
}

describe('TableReadiness', () => {
  test('a replicant is not ready without an upstream core, then ready once every connected member\'s lane is here', () => {
    const core = hub('core-1', 'core');
    const agent = hub('agent-1', 'agent');
    const replicant = hub('repl-1', 'replicant');
    core.subscribe('a/#', 0);
    agent.subscribe('b/#', 0, '$link/b');
    const membership = new Membership('repl-1');
    const readiness = new TableReadiness(replicantView(replicant, membership), { waitMs: 60_000, remembered: new Map(), roles: ROLES, logger });
    expect(readiness.gaps()).toMatchObject({ noSource: true });

    const hubs = new Map([['core-1', core], ['agent-1', agent], ['repl-1', replicant]]);
    up(membership, 'core-1', 'core');
    up(membership, 'agent-1', 'agent');
    expect(readiness.gaps()).toMatchObject({ noSource: false, sources: ['core-1'], withoutLane: ['agent-1', 'core-1'] });
    // The agent's lane reaches the replicant through the core only.
    replicant.connect('core-1', 0);
    core.connect('repl-1', 0);
    agent.connect('core-1', 0);
    core.connect('agent-1', 0);
    pump(hubs);
    readiness.check();
    expect(readiness.gaps()).toEqual({ noSource: false, discovery: false, sources: [], disconnected: [], withoutLane: [] });
    expect(readiness.isReady).toBe(true);
    expect(readiness.complete).toBe(true);
  });

  test('a remembered member keeps the table incomplete until it is back with its lane; the wait is bounded', async () => {
    const replicant = hub('repl-1', 'replicant');
    const core = hub('core-1', 'core');
    const membership = new Membership('repl-1');
    const remembered = new Map([['core-1', { role: 'core' }], ['core-2', { role: 'core' }]]);
    const readiness = new TableReadiness(replicantView(replicant, membership), { waitMs: 200, remembered, roles: ROLES, logger, pollMs: 10 });
    up(membership, 'core-1', 'core');
    replicant.connect('core-1', 0);
    core.connect('repl-1', 0);
    pump(new Map([['core-1', core], ['repl-1', replicant]]));
    readiness.start();
    expect(readiness.gaps().disconnected).toEqual(['core-2']);
    expect(readiness.isReady).toBe(false);
    const started = Date.now();
    await readiness.ready;
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(readiness.complete).toBe(false);
  });

  test('a lane of an earlier incarnation does not count', () => {
    const core = hub('core-1', 'core');
    const replicant = hub('repl-1', 'replicant');
    const membership = new Membership('repl-1');
    replicant.connect('core-1', 0);
    core.connect('repl-1', 0);
    pump(new Map([['core-1', core], ['repl-1', replicant]]));
    up(membership, 'core-1', 'core', 2);
    const readiness = new TableReadiness(replicantView(replicant, membership), { waitMs: 60_000, remembered: new Map(), roles: ROLES, logger });
    expect(readiness.gaps().withoutLane).toEqual(['core-1']);
  });

  test('discovery not yet dialed keeps it incomplete', () => {
    const core = hub('core-1', 'core');
    const membership = new Membership('core-1');
    const view: RegionalTableView = { sync: core, membership, needsSource: false, discoverySettled: () => false, tableSources: () => [] };
    const readiness = new TableReadiness(view, { waitMs: 60_000, remembered: new Map(), roles: ROLES, logger });
    expect(readiness.gaps()).toMatchObject({ discovery: true, noSource: false });
  });
});

describe('RememberedMembers', () => {
  let dir: string;
  let store: NodeStore;
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'meridian-members-'));
    store = await openStore({ dir, durability: 'durable', commitDelayMs: 0, maxSizeMb: 64, maxQueuedMessages: 100, logger });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const reopen = async (): Promise<RememberedMembers> => {
    await store.close();
    store = await openStore({ dir, durability: 'durable', commitDelayMs: 0, maxSizeMb: 64, maxQueuedMessages: 100, logger });
    return RememberedMembers.open(store.area('cluster-members'), logger);
  };

  test('members seen are remembered across a restart; one that left, or did not come back during the wait, is forgotten', async () => {
    const first = await RememberedMembers.open(store.area('cluster-members'), logger);
    expect(first.previous.size).toBe(0);
    first.seen('core-2', { role: 'core', address: 'h2:4370' });
    first.seen('repl-1', { role: 'replicant', address: 'h3:4370' });
    first.seen('agent-1', { role: 'agent', address: 'h4:4370' });
    first.forget('agent-1');
    const second = await reopen();
    expect(Object.fromEntries(second.previous)).toEqual({ 'core-2': { role: 'core', address: 'h2:4370' }, 'repl-1': { role: 'replicant', address: 'h3:4370' } });
    second.seen('core-2', { role: 'core', address: 'h2:4370' });
    second.settle();
    const third = await reopen();
    expect([...third.previous.keys()]).toEqual(['core-2']);
  });
});
