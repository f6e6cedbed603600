/** Status conditions following the Kubernetes API conventions (metav1.Condition). */
import type { Condition, ConditionStatus } from '../api/types.js';

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export const condition = (type: string, status: ConditionStatus, reason: string, message: string): ConditionInput => ({ type, status, reason, message });

/**
 * The conditions to write, in the order given: lastTransitionTime stays what it was while a condition's status
 * does not change (a new reason or message is not a transition), and becomes `now` when it does.
 */
export function mergeConditions(previous: readonly Condition[] | undefined, next: readonly ConditionInput[], generation: number | undefined, now: string): Condition[] {
  return next.map((c) => {
    const before = previous?.find((p) => p.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: before && before.status === c.status ? before.lastTransitionTime : now,
      ...(generation === undefined ? {} : { observedGeneration: generation }),
    };
  });
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
