import { condition, mergeConditions } from '../../../src/controller/conditions.js';
import type { Condition } from '../../../src/api/types.js';

describe('mergeConditions', () => {
  const previous: Condition[] = [
    { type: 'Ready', status: 'False', reason: 'NodesNotReady', message: '0/2', lastTransitionTime: '2025-01-01T00:00:00.000Z', observedGeneration: 1 },
    { type: 'ConfigApplied', status: 'True', reason: 'Applied', message: 'ok', lastTransitionTime: '2025-01-01T00:00:00.000Z', observedGeneration: 1 },
  ];
  const now = '2025-02-02T00:00:00.000Z';

  it('keeps lastTransitionTime while the status stays, even when reason and message change', () => {
    const [ready] = mergeConditions(previous, [condition('Ready', 'False', 'AwaitingController', 'waiting')], 2, now);
    expect(ready).toEqual({ type: 'Ready', status: 'False', reason: 'AwaitingController', message: 'waiting', lastTransitionTime: '2025-01-01T00:00:00.000Z', observedGeneration: 2 });
  });

  it('moves lastTransitionTime when the status changes, and stamps new conditions with now', () => {
    const merged = mergeConditions(previous, [condition('ConfigApplied', 'False', 'InvalidSpec', 'bad'), condition('Available', 'Unknown', 'X', 'y')], 3, now);
    expect(merged.map((c) => [c.type, c.lastTransitionTime, c.observedGeneration])).toEqual([
      ['ConfigApplied', now, 3],
      ['Available', now, 3],
    ]);
  });
});
