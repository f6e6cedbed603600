/**
 * Kubernetes Events (core/v1) for what the operator did, on the object it did it for. Repeats of one event (same
 * object, type, reason and message) within a process raise the first Event's `count` instead of creating new
 * ones, as client-go's correlator does. Recording never fails the caller: a refused Event is only logged.
 */
import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from '../../../broker/src/log/logger.js';
import type { ApiObject, KubeClient } from './client.js';
import { describeError } from './informer.js';
import { RESOURCES } from './resources.js';

export type EventType = 'Normal' | 'Warning';

interface Recorded {
  name: string;
  namespace: string;
  count: number;
}

const MAX_REMEMBERED = 1000;
const MAX_MESSAGE = 1024;

export class EventRecorder {
  private readonly recent = new Map<string, Recorded>();

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly logger: Logger,
  ) {}

  async record(obj: ApiObject, type: EventType, reason: string, message: string): Promise<void> {
    const meta = obj.metadata;
    const namespace = meta?.namespace ?? 'default';
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
    const key = `${meta?.uid}|${type}|${reason}|${text}`;
    const now = new Date().toISOString();
    this.logger.info({ object: `${obj.kind}/${namespace}/${meta?.name}`, type, reason }, text);
    try {
      const seen = this.recent.get(key);
      if (seen) {
        seen.count += 1;
        await this.client.mergePatch(RESOURCES.event, seen.namespace, seen.name, { count: seen.count, lastTimestamp: now });
        return;
      }
      const name = `${meta?.name ?? 'object'}.${randomBytes(8).toString('hex')}`;
      const event: CoreV1Event = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: meta?.name, namespace, uid: meta?.uid, resourceVersion: meta?.resourceVersion },
        type,
        reason,
        message: text,
        count: 1,
        source: { component: this.component },
        firstTimestamp: new Date(now),
        lastTimestamp: new Date(now),
      };
      await this.client.create(event, this.component);
      this.remember(key, { name, namespace, count: 1 });
    } catch (err) {
      this.recent.delete(key);
      this.logger.warn({ err: describeError(err), reason }, 'could not record event');
    }
  }

  private remember(key: string, recorded: Recorded): void {
    if (this.recent.size >= MAX_REMEMBERED) {
      const oldest = this.recent.keys().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
    this.recent.set(key, recorded);
  }
}
