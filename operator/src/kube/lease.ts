/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: a candidate takes the Lease when it
 * is free or when its holder has not renewed for leaseDuration — measured on the candidate's own clock from when
 * it last saw the record change, so clock skew between machines does not matter. The leader renews every
 * retryPeriod and gives up leadership when it could not renew for renewDeadline (< leaseDuration), so it stops
 * acting before anybody else may start. Writes carry the Lease's resourceVersion: two candidates never both win.
 * On a clean stop the leader releases the Lease so a standby takes over at once.
 */
import type { Logger } from '../../../broker/src/log/logger.js';
import { isConflict, type ApiObject, type KubeClient } from './client.js';
import type { EventRecorder } from './events.js';
import { describeError } from './informer.js';
import { RESOURCES } from './resources.js';

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeaderCallbacks {
  onStartedLeading(): Promise<void>;
  onStoppedLeading(): Promise<void>;
}

/** The fields of a Lease's spec the election reads, as they are on the wire. */
export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/** A Lease's MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/Z$/, '000Z');
}

export interface Observation {
  record: LeaseRecord;
  /** Local clock (ms) when the record was last seen to change. */
  at: number;
}

/** Whether `identity` may take (or keep) the Lease now, given what it has observed. */
export function mayAcquire(observed: Observation, identity: string, now: number, defaultDurationMs: number): boolean {
  const holder = observed.record.holderIdentity;
  if (!holder || holder === identity) return true;
  const durationMs = (observed.record.leaseDurationSeconds ?? defaultDurationMs / 1000) * 1000;
  return observed.at + durationMs <= now;
}

/** The record to write: a renewal keeps acquireTime and the transition count, a takeover bumps them. */
export function nextRecord(current: LeaseRecord, identity: string, now: Date, leaseDurationMs: number): LeaseRecord {
  const renewing = current.holderIdentity === identity;
  return {
    holderIdentity: identity,
    leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
    acquireTime: renewing && current.acquireTime ? current.acquireTime : microTime(now),
    renewTime: microTime(now),
    leaseTransitions: (current.leaseTransitions ?? 0) + (renewing || !current.holderIdentity ? 0 : 1),
  };
}

/** A Lease as the operator handles it (client-node's V1Lease declares the times as Date; on the wire they are strings). */
type LeaseObject = ApiObject & { spec?: LeaseRecord };

const sameRecord = (a: LeaseRecord, b: LeaseRecord): boolean => a.holderIdentity === b.holderIdentity && a.renewTime === b.renewTime;

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });

export class LeaderElector {
  private observed?: Observation;
  private leading = false;
  private readonly abort = new AbortController();
  private running?: Promise<void>;

  constructor(
    private readonly client: KubeClient,
    private readonly config: LeaderElectionConfig,
    private readonly logger: Logger,
    private readonly events?: EventRecorder,
  ) {
    if (config.renewDeadlineMs >= config.leaseDurationMs) throw new Error('leader election: renew deadline must be shorter than the lease duration');
    if (config.retryPeriodMs >= config.renewDeadlineMs) throw new Error('leader election: retry period must be shorter than the renew deadline');
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns, leads, and campaigns again after losing the Lease, until stop(). */
  run(callbacks: LeaderCallbacks): Promise<void> {
    this.running ??= this.loop(callbacks);
    return this.running;
  }

  /** Stops campaigning; a leader stops leading (callbacks.onStoppedLeading) and releases the Lease. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async loop(callbacks: LeaderCallbacks): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (!(await this.tryAcquireOrRenew())) {
        await sleep(this.config.retryPeriodMs * (1 + Math.random() * 0.2), signal);
        continue;
      }
      this.leading = true;
      this.logger.info({ lease: `${this.config.namespace}/${this.config.name}`, identity: this.config.identity }, 'became leader');
      void this.recordLeaseEvent(`${this.config.identity} became leader`);
      await callbacks.onStartedLeading();
      await this.renewUntilLost(signal);
      this.leading = false;
      await callbacks.onStoppedLeading();
      if (signal.aborted) await this.release();
      else this.logger.warn({ identity: this.config.identity }, 'lost leadership; campaigning again');
    }
  }

  private async renewUntilLost(signal: AbortSignal): Promise<void> {
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(this.config.retryPeriodMs, signal);
      if (signal.aborted) return;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew >= this.config.renewDeadlineMs) {
        this.logger.error({ renewDeadlineMs: this.config.renewDeadlineMs }, 'could not renew the lease within the renew deadline');
        return;
      }
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationMs } = this.config;
    try {
      const lease = await this.client.get<LeaseObject>(RESOURCES.lease, namespace, name);
      const now = new Date();
      if (!lease) {
        const created = await this.client.create<LeaseObject>(
          { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: nextRecord({}, identity, now, leaseDurationMs) },
          identity,
        );
        this.observe(recordOf(created), Date.now());
        return true;
      }
      const record = recordOf(lease);
      if (!this.observed || !sameRecord(this.observed.record, record)) this.observe(record, now.getTime());
      if (!mayAcquire(this.observed as Observation, identity, now.getTime(), leaseDurationMs)) return false;
      const next = nextRecord(record, identity, now, leaseDurationMs);
      const updated = await this.client.mergePatch<LeaseObject>(RESOURCES.lease, namespace, name, {
        metadata: { resourceVersion: lease.metadata?.resourceVersion },
        spec: next,
      });
      this.observe(recordOf(updated), Date.now());
      return true;
    } catch (err) {
      if (!isConflict(err)) this.logger.warn({ err: describeError(err), lease: `${namespace}/${name}` }, 'lease request failed');
      return false;
    }
  }

  private observe(record: LeaseRecord, at: number): void {
    this.observed = { record, at };
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.config;
    try {
      const lease = await this.client.get<LeaseObject>(RESOURCES.lease, namespace, name);
      if (!lease || recordOf(lease).holderIdentity !== identity) return;
      await this.client.mergePatch(RESOURCES.lease, namespace, name, {
        metadata: { resourceVersion: lease.metadata?.resourceVersion },
        spec: { holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      });
      this.logger.info({ identity }, 'released the lease');
    } catch (err) {
      this.logger.warn({ err: describeError(err) }, 'could not release the lease');
    }
  }

  private async recordLeaseEvent(message: string): Promise<void> {
    const lease = await this.client.get<LeaseObject>(RESOURCES.lease, this.config.namespace, this.config.name).catch(() => undefined);
    if (lease && this.events) await this.events.record({ ...lease, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' }, 'Normal', 'LeaderElection', message);
  }
}

function recordOf(lease: LeaseObject): LeaseRecord {
  return lease.spec ?? {};
}
