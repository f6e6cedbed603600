import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** MQTT.js clients for the security tests: connect without reconnecting, record messages, close by test end. */
export class ClientPool {
  private readonly clients: MqttClient[] = [];

  constructor(private readonly host: string, private readonly port: () => number) {}

  /** Resolves once CONNACK 0 arrived; rejects with the CONNACK return code (err.code) otherwise. */
  connect(options: IClientOptions = {}, port = this.port(), host = this.host): Promise<MqttClient> {
    return new Promise((resolve, reject) => {
      const client = mqtt.connect({ host, port, protocol: 'mqtt', protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options });
      this.clients.push(client);
      const fail = (err: Error): void => {
        client.end(true);
        reject(err);
      };
      client.once('connect', () => {
        client.off('error', fail);
        client.on('error', () => undefined);
        resolve(client);
      });
      client.once('error', fail);
      client.once('close', () => fail(new Error(`connection to ${host}:${port} closed before CONNACK`)));
    });
  }

  /** The CONNACK return code the broker answers with (0 = accepted). */
  async connackCode(options: IClientOptions = {}, port = this.port(), host = this.host): Promise<number> {
    try {
      const client = await this.connect(options, port, host);
      client.end(true);
      return 0;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== 'number') throw err;
      return code;
    }
  }

  closeAll(): void {
    for (const client of this.clients) client.end(true);
  }
}

export interface Received {
  topic: string;
  payload: string;
  retain: boolean;
  qos: number;
}

/** Records every message a client receives. */
export function recorder(client: MqttClient): Received[] {
  const received: Received[] = [];
  client.on('message', (topic, payload, packet) => received.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos }));
  return received;
}

/** Granted QoS per filter (128 = refused, [MQTT-3.9.3-2]). */
export async function subscribe(client: MqttClient, filter: string, qos: 0 | 1 | 2 = 1): Promise<number> {
  try {
    const granted = await client.subscribeAsync(filter, { qos });
    return granted[0]?.qos ?? -1;
  } catch (err) {
    // MQTT.js rejects a SUBACK carrying 0x80; the granted list is on the error.
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted?.[0] === undefined) throw err;
    return granted[0];
  }
}

/** Resolves when the broker closed the client's connection (e.g. after an unauthorized PUBLISH). */
export function closed(client: MqttClient, timeoutMs = 5000): Promise<boolean> {
  if (client.disconnected || !client.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    client.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Lets in-flight deliveries arrive before asserting that something did NOT arrive. */
export function settle(ms = 300): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
