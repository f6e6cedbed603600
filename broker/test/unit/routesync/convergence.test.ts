import { forEachSeed, type Rng } from './prng.js';
import { Simulation, type SimConfig } from './sim.js';

const TTL_MS = 400;

/** One random world per seed: topology size, channel behaviour, persistence. */
function randomConfig(rng: Rng): SimConfig {
  const chaotic = rng.chance(0.6);
  return {
    cores: rng.between(1, 3),
    replicants: rng.between(0, 3),
    dropRate: chaotic ? 0.05 : 0,
    duplicateRate: chaotic ? 0.05 : 0,
    maxDelayMs: rng.between(1, 30),
    reorder: chaotic,
    staleDeliveryRate: chaotic ? 0.3 : 0,
    persistentSubscriptions: rng.chance(0.5),
    trace: process.env.MERIDIAN_SIM_TRACE === '1',
    hub: {
      ttlMs: TTL_MS,
      heartbeatMs: 120,
      retransmitMs: 60,
      handshakeRetryMs: 60,
      batch: { maxOps: rng.pick([1, 3, 4000]), maxDelayMs: 10 },
      snapshotChunkRoutes: rng.pick([1, 2, 4000]),
      window: rng.pick([1, 4, 32]),
      maxRetainedOps: rng.pick([2, 50_000]),
      gcIntervalMs: 20,
    },
  };
}

describe('route sync convergence (property)', () => {
  it('random subscribe/unsubscribe/disconnect/restart/kill interleavings converge to the true route set', () => {
    forEachSeed(300, (rng) => {
      const sim = new Simulation(rng, randomConfig(rng));
      sim.churn(rng.between(200, 1500));
      sim.quiesce(4 * TTL_MS);
      for (const { node, actual, expected } of sim.tables()) {
        if (actual.join('\n') === expected.join('\n')) continue;
        const missing = expected.filter((r) => !actual.includes(r));
        const extra = actual.filter((r) => !expected.includes(r));
        throw new Error(
          `${node} diverged at t=${sim.now}: missing ${JSON.stringify(missing)}, extra ${JSON.stringify(extra)}\n` +
            `last events:\n${sim.log.slice(-40).join('\n')}`,
        );
      }
      expect(sim.tables().length).toBeGreaterThan(0);
    });
  }, 120_000);

  it('converges on a clean channel with default batching within a few round trips, without gaps', () => {
    forEachSeed(30, (rng) => {
      const config = randomConfig(rng);
      const hub = { ...config.hub, batch: { maxOps: 4000, maxDelayMs: 10 }, snapshotChunkRoutes: 4000, window: 32, maxRetainedOps: 50_000 };
      const sim = new Simulation(rng, { ...config, hub, dropRate: 0, duplicateRate: 0, reorder: false, staleDeliveryRate: 0 });
      sim.quiesce(50);
      sim.subscribeSome(20);
      sim.quiesce(100);
      const tables = sim.tables();
      expect(tables[0].expected.length).toBeGreaterThan(0);
      for (const { actual, expected } of tables) expect(actual).toEqual(expected);
      for (const node of sim.nodes.values()) {
        expect({ node: node.id, gaps: node.hub?.stats().gaps }).toEqual({ node: node.id, gaps: 0 });
      }
    });
  }, 60_000);
});
