import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** An MQTT.js client on 127.0.0.1:`port` that does not reconnect; resolves at CONNACK, rejects on error/close. */
export function connectClient(port: number, options: IClientOptions = {}, protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss' = 'mqtt', path = ''): Promise<MqttClient> {
  const url = `${protocol}://127.0.0.1:${port}${path}`;
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error(`connection to ${url} closed before CONNACK`)));
  });
}

/**
 * Resolves with `topic=payload` of the next `count` messages (waiting a short grace period after the last one, so
 * a duplicate would be seen), or rejects after `timeoutMs` saying how many arrived.
 */
export function collectMessages(client: MqttClient, count: number, timeoutMs = 15000, graceMs = 300): Promise<string[]> {
  const received: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`received ${received.length}/${count}: ${received.sort().join(' ')}`)), timeoutMs);
    client.on('message', (topic, payload) => {
      received.push(`${topic}=${payload.toString()}`);
      if (received.length === count) {
        clearTimeout(timer);
        setTimeout(() => resolve(received), graceMs);
      }
    });
  });
}
