import { createHash } from 'node:crypto';

/**
 * Rendezvous (highest random weight) hashing: the candidate with the highest `sha256(key ‖ 0 ‖ candidate)`, ties to
 * the smallest name. Every member computes the same winner from the same list, and a candidate joining or leaving
 * moves only the keys it wins or won. Undefined for no candidates.
 */
export function rendezvousWinner(key: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const candidate of candidates) {
    const score = createHash('sha256').update(key).update('\u0000').update(candidate).digest().readBigUInt64BE(0);
    if (score > bestScore || (score === bestScore && best !== undefined && candidate < best)) {
      best = candidate;
      bestScore = score;
    }
  }
  return best;
}
