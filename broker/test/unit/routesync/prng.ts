/** A small seeded PRNG (sfc32) for property tests: a failing run prints its seed and replays with it. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    this.d >>>= 0;
    const t = (this.a + this.b + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/** How many runs a property test makes: `MERIDIAN_PROPERTY_RUNS` or the given default. */
export function propertyRuns(defaultRuns: number): number {
  const fromEnv = Number(process.env.MERIDIAN_PROPERTY_RUNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : defaultRuns;
}

/** Seeds for the runs: `MERIDIAN_PROPERTY_SEED` replays one run; otherwise a fresh base seed each time. */
export function propertySeeds(defaultRuns: number): number[] {
  const replay = Number(process.env.MERIDIAN_PROPERTY_SEED);
  if (Number.isInteger(replay) && process.env.MERIDIAN_PROPERTY_SEED !== undefined) return [replay];
  const base = Math.floor(Math.random() * 2 ** 31);
  return Array.from({ length: propertyRuns(defaultRuns) }, (_, i) => (base + i * 7919) >>> 0);
}

/** Runs `check` for every seed; a failure is rethrown with the seed to replay it. */
export function forEachSeed(defaultRuns: number, check: (rng: Rng) => void): void {
  for (const seed of propertySeeds(defaultRuns)) {
    try {
      check(new Rng(seed));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`property failed with seed ${seed} (replay: MERIDIAN_PROPERTY_SEED=${seed}):\n${message}`, { cause: error });
    }
  }
}

/** Random filters and topics over a tiny alphabet, so that matches (and `$` cases) are frequent. */
export const LEVELS = ['a', 'b', '', '$x'];

export function randomTopic(rng: Rng, maxLevels = 4): string {
  const n = rng.between(1, maxLevels);
  return nonEmpty(Array.from({ length: n }, () => rng.pick(LEVELS)).join('/'));
}

export function randomFilter(rng: Rng, maxLevels = 4): string {
  const n = rng.between(1, maxLevels);
  const levels: string[] = [];
  for (let i = 0; i < n; i++) {
    const roll = rng.next();
    if (i === n - 1 && roll < 0.2) levels.push('#');
    else if (roll < 0.45) levels.push('+');
    else levels.push(rng.pick(LEVELS));
  }
  return nonEmpty(levels.join('/'));
}

/** A topic that `filter` matches (wildcards filled at random), or a random topic with some probability. */
export function topicNear(rng: Rng, filter: string): string {
  const levels: string[] = [];
  for (const level of filter.split('/')) {
    if (level === '+') levels.push(rng.pick(LEVELS));
    else if (level === '#') for (let k = rng.int(3); k > 0; k--) levels.push(rng.pick(LEVELS));
    else levels.push(level);
  }
  if (levels.length === 0) levels.push(rng.pick(LEVELS));
  return nonEmpty(levels.join('/'));
}

/** A single empty level is the empty string, which is neither a topic nor a filter. */
function nonEmpty(s: string): string {
  return s === '' ? '/' : s;
}
