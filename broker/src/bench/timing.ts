/** Small timing helpers shared by the bench runners. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function sleepUntil(deadline: number): Promise<void> {
  const remaining = deadline - performance.now();
  if (remaining > 0) await sleep(remaining);
}

/** Resolves true when `ms` passed before `work` settled. */
export async function raceTimeout(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([work.then(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits up to `ms`, waking every 50 ms to stop early once `stop()` holds or the signal aborts. */
export async function waitUntil(ms: number, stop: () => boolean, signal?: AbortSignal): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline && !stop() && !signal?.aborted) {
    await sleep(Math.min(50, deadline - performance.now()), signal);
  }
}
