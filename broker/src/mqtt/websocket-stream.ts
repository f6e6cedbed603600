import type { Duplex } from 'node:stream';
import { createWebSocketStream, type WebSocket } from 'ws';

/** RFC 6455 close code 1003: the endpoint received a type of data it cannot accept. */
const UNSUPPORTED_DATA = 1003;

/**
 * The WebSocket as the byte stream aedes reads, with MQTT's framing rule: MQTT travels in binary data frames only,
 * and any other data frame closes the connection [MQTT-6.0.0-1]. `ws`'s own stream pushes text frames as bytes;
 * its message listener (the only one on a fresh socket) is replaced by one that refuses them. The stream is
 * destroyed with an error, which aedes reports (and logs) as a client or connection error.
 */
export function mqttWebSocketStream(ws: WebSocket): Duplex {
  const stream = createWebSocketStream(ws);
  ws.removeAllListeners('message');
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (stream.destroyed) return;
    if (!isBinary) {
      ws.close(UNSUPPORTED_DATA, 'MQTT needs binary frames');
      stream.destroy(new Error('text WebSocket frame: MQTT travels in binary frames only [MQTT-6.0.0-1]'));
      return;
    }
    if (!stream.push(data)) ws.pause();
  });
  return stream;
}

/** [MQTT-6.0.0-4]: select "mqtt" when offered; MQTT 3.1 clients offer "mqttv3.1". Anything else: none. */
export function selectMqttSubprotocol(offered: Set<string>): string | false {
  if (offered.has('mqtt')) return 'mqtt';
  if (offered.has('mqttv3.1')) return 'mqttv3.1';
  return false;
}
