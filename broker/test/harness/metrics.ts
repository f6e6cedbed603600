import type { BrokerProcess } from './broker-process.js';

/**
 * Reads one sample of the node's Prometheus /metrics text. `labels` must match the sample's labels exactly
 * (order-insensitive); with `labels` omitted, all samples of the metric are summed.
 */
export function metricValue(text: string, name: string, labels?: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const value = Number(match[3]);
    if (labels === undefined) {
      sum += value;
      continue;
    }
    if (sameLabels(parseLabels(match[2] ?? ''), labels)) return value;
  }
  return sum;
}

export async function scrapeMetric(broker: BrokerProcess, name: string, labels?: Record<string, string>): Promise<number> {
  const { status, body } = await broker.getJson<string>('/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  return metricValue(body, name, labels);
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1] as string] = m[2] as string;
  return labels;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Polls `probe` until it returns true or `timeoutMs` passes; returns the last result. */
export async function eventually(probe: () => Promise<boolean> | boolean, timeoutMs = 3000, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
