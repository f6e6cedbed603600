import type { Aedes, Client } from 'aedes';

/**
 * The few aedes 1.2 internals Meridian relies on, typed in one place so an aedes upgrade has one file to check.
 * aedes keeps connected clients by id, each client's granted subscriptions by (internal) filter, and feeds every
 * chunk read from the socket to `client._parser.parse`.
 */
interface AedesWithClients {
  clients: Record<string, Client>;
}

interface ClientWithInternals {
  subscriptions: Record<string, { qos: number }>;
  _keepaliveInterval?: number;
  _parser: { parse(buf: Buffer): unknown };
}

export function clientsOf(aedes: Aedes): Client[] {
  return Object.values((aedes as unknown as AedesWithClients).clients);
}

export function subscriptionsOf(client: Client): Record<string, { qos: number }> {
  return (client as unknown as ClientWithInternals).subscriptions;
}

export function keepaliveSecondsOf(client: Client): number {
  const interval = (client as unknown as ClientWithInternals)._keepaliveInterval;
  // aedes stores 1.5 × keepalive in milliseconds (the [MQTT-3.1.2-24] grace period).
  return interval !== undefined && interval > 0 ? Math.round(interval / 1500) : 0;
}

/** Wraps the parser entry point so `inspect` sees every received chunk first; returning false drops the chunk. */
export function interceptReceivedBytes(client: Client, inspect: (chunk: Buffer) => boolean): void {
  const parser = (client as unknown as ClientWithInternals)._parser;
  const parse = parser.parse.bind(parser);
  parser.parse = (chunk: Buffer) => (inspect(chunk) ? parse(chunk) : undefined);
}
