import type { StoreArea } from '../store/index.js';

/** Store area that keeps the clock base of `clusterIncarnation` (the same name for nodes and sidecar link agents). */
export const CLUSTER_INCARNATION_AREA = 'cluster-incarnation';
const BASE_KEY = 'base';

/**
 * A member's incarnation in its cluster: a wall-clock base (ms, chosen when its store is new, kept in `area`) + the
 * store's incarnation (bumped and fsynced at every start). A wiped store therefore never repeats an incarnation the
 * region has seen: its base is later than the old base plus the old store's restarts (one per start, far fewer than
 * the milliseconds between two stores). The store's own incarnation starts at 1 again, which the route-sync hubs
 * refused as stale (`stale_incarnation`) until the old lane expired. A store from before this (no base yet) gets a
 * base now, so its next incarnation is above every one it used. Assumes the wall clock does not go back by more than
 * the time between two stores. The value stays below 2^53 (every wire encoding of incarnations takes it: u64 in the
 * transport handshake and forwarded copies, varint up to 2^53 - 1 in route sync).
 */
export async function clusterIncarnation(area: StoreArea, storeIncarnation: number, now = Date.now()): Promise<number> {
  const stored = await area.get(BASE_KEY);
  let base: number;
  if (stored?.length === 8) {
    base = Number(stored.readBigUInt64BE(0));
  } else {
    // Written before the incarnation is used; if it were lost, the next start's base would be later still.
    base = now;
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64BE(BigInt(base));
    await area.put(BASE_KEY, bytes);
  }
  const incarnation = base + storeIncarnation;
  if (!Number.isSafeInteger(incarnation)) throw new Error(`cluster incarnation ${base} + ${storeIncarnation} is not a safe integer`);
  return incarnation;
}
