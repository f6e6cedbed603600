import type { MqttClient } from 'mqtt';

/** Counts which member of a shared group received which message (payloads are message ids). */
export class ShareTally {
  readonly byMember = new Map<string, string[]>();

  /**
   * Records every message `client` receives on topics matching `accept`. With `resumes`, the client is a persistent
   * session coming back: a DUP re-send of a message that session's earlier connection already received is the QoS 1
   * redelivery of what was in flight when it left [MQTT-4.4.0-1], not a second member getting it, so it is not counted.
   */
  member(name: string, client: MqttClient, accept: (topic: string) => boolean = () => true, resumes?: string): void {
    const got: string[] = this.byMember.get(name) ?? [];
    this.byMember.set(name, got);
    client.on('message', (topic, payload, packet) => {
      if (!accept(topic)) return;
      const id = payload.toString();
      if (resumes !== undefined && packet.dup && this.byMember.get(resumes)?.includes(id)) return;
      got.push(id);
    });
  }

  get total(): number {
    let n = 0;
    for (const got of this.byMember.values()) n += got.length;
    return n;
  }

  counts(): Record<string, number> {
    return Object.fromEntries([...this.byMember].map(([name, got]) => [name, got.length]));
  }

  /** Ids received more than once in total, and expected ids nobody received. */
  check(expected: readonly string[]): { duplicates: string[]; lost: string[] } {
    const seen = new Map<string, number>();
    for (const got of this.byMember.values()) for (const id of got) seen.set(id, (seen.get(id) ?? 0) + 1);
    return {
      duplicates: [...seen].filter(([, n]) => n > 1).map(([id]) => id),
      lost: expected.filter((id) => !seen.has(id)),
    };
  }
}

/** Waits until `check` holds, then `graceMs` more (a duplicate would arrive meanwhile); throws with `describe()`. */
export async function until(check: () => boolean, timeoutMs: number, describe: () => string, graceMs = 400): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms: ${describe()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  await new Promise((r) => setTimeout(r, graceMs));
}
