import { MosquittoMesh } from './mosquitto-mesh.js';
import { Workload, sleep, type StreamResult, type WorkloadOptions } from './workload.js';

/** The injected one-way delays of the scenario (issue 6). */
export const SCENARIO_DELAYS = { 'us-east|us-west': 32, 'us-east|emea': 45, 'us-west|emea': 75 } as const;

export interface ComparisonResult {
  stream: StreamResult;
  /** Bytes on the inter-region proxies during the stream and its drain. */
  linkBytes: { total: number; byPair: Record<string, number> };
}

/** Runs the workload (no drills) over three bridged mosquitto brokers. */
export async function runMosquittoComparison(streamSeconds: number, options: WorkloadOptions = {}): Promise<ComparisonResult> {
  const mesh = await MosquittoMesh.start({ delays: { 'us-east|us-west': SCENARIO_DELAYS['us-east|us-west'], 'us-east|emea': SCENARIO_DELAYS['us-east|emea'] }, log: options.log });
  let workload: Workload | undefined;
  try {
    workload = await Workload.start(mesh.target(), { ...options, clientIdPrefix: 'e2e-mosquitto' });
    await sleep(500);
    mesh.resetCounters();
    const stream = workload.startStream('mosquitto');
    await sleep(streamSeconds * 1000);
    const result = await stream.drain(30000);
    return { stream: result, linkBytes: mesh.bytes() };
  } finally {
    await workload?.stop();
    await mesh.stop();
  }
}
