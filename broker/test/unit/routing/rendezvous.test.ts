import { rendezvousWinner } from '../../../src/routing/rendezvous.js';

describe('rendezvous hashing', () => {
  it('picks the same winner whatever the order of the candidates, none without candidates', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4'];
    const winner = rendezvousWinner('key', nodes);
    expect(nodes).toContain(winner);
    expect(rendezvousWinner('key', [...nodes].reverse())).toBe(winner);
    expect(rendezvousWinner('key', [])).toBeUndefined();
  });

  it('moves only the keys the leaving candidate won', () => {
    const nodes = ['n1', 'n2', 'n3', 'n4'];
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    const before = new Map(keys.map((k) => [k, rendezvousWinner(k, nodes)]));
    const after = new Map(keys.map((k) => [k, rendezvousWinner(k, nodes.filter((n) => n !== 'n2'))]));
    for (const k of keys) if (before.get(k) !== 'n2') expect(after.get(k)).toBe(before.get(k));
    expect([...before.values()].filter((n) => n === 'n2').length).toBeGreaterThan(0);
  });
});
