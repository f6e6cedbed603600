import type { AedesOptions, Client } from 'aedes';
import type { IConnectPacket } from 'mqtt-packet';

/** The limits a CONNECT is held to before authentication. */
export interface ConnectLimits {
  /** Longest Client Identifier accepted, in bytes. */
  maxClientIdLength: number;
  /** Longest Keep Alive accepted, in seconds; 0 = no limit. With a limit, Keep Alive 0 (none) is refused too. */
  maxKeepalive: number;
}

export interface ConnectRefusal {
  reason: 'client_id_too_long' | 'empty_client_id' | 'keepalive_too_large';
  detail: string;
}

/** CONNACK 0x02, Identifier rejected: the one MQTT 3.1.1 code for these refusals (mosquitto sends it too). */
export const IDENTIFIER_REJECTED = 2;

/**
 * Why a CONNECT is refused with CONNACK 0x02, or undefined:
 * - a zero-byte Client Identifier with CleanSession 0 [MQTT-3.1.3-8] (and any zero-byte one in MQTT 3.1);
 * - a Client Identifier longer than `maxClientIdLength` bytes [MQTT-3.1.3-9];
 * - a Keep Alive beyond `maxKeepalive`: aedes' own keepaliveLimit answers 0x06, a code MQTT 3.1.1 reserves
 *   [MQTT-3.2.2-6], so the limit is enforced here instead.
 * Packets of other protocol levels are left to aedes, which answers them 0x01.
 */
export function connectRefusal(packet: IConnectPacket, limits: ConnectLimits): ConnectRefusal | undefined {
  if (packet.protocolVersion !== 3 && packet.protocolVersion !== 4) return undefined;
  const clientIdBytes = Buffer.byteLength(packet.clientId);
  if (clientIdBytes === 0 && (packet.clean === false || packet.protocolVersion === 3)) {
    return { reason: 'empty_client_id', detail: 'zero-byte client identifier without CleanSession 1 [MQTT-3.1.3-8]' };
  }
  if (clientIdBytes > limits.maxClientIdLength) {
    return { reason: 'client_id_too_long', detail: `client identifier of ${clientIdBytes} bytes exceeds limits.maxClientIdLength ${limits.maxClientIdLength}` };
  }
  const keepalive = packet.keepalive ?? 0;
  if (limits.maxKeepalive > 0 && (keepalive === 0 || keepalive > limits.maxKeepalive)) {
    return { reason: 'keepalive_too_large', detail: `keep alive ${keepalive === 0 ? '0 (none)' : `${keepalive} s`} exceeds limits.maxKeepalive ${limits.maxKeepalive} s` };
  }
  return undefined;
}

type Hooks = Required<Pick<AedesOptions, 'preConnect' | 'authenticate'>>;

/**
 * Wraps the security hooks so that `connectRefusal` is applied: preConnect notes the refusal, and authenticate —
 * the one aedes hook whose refusal aedes answers with a chosen CONNACK code (2–5) before closing — answers it
 * with 0x02 instead of authenticating. `onRefused` counts and logs it.
 */
export function withConnectPolicy(inner: Hooks, limits: ConnectLimits, onRefused: (client: Client, refusal: ConnectRefusal) => void): Hooks {
  const refusals = new WeakMap<Client, ConnectRefusal>();
  return {
    preConnect(client, packet, done) {
      const refusal = connectRefusal(packet, limits);
      if (refusal) refusals.set(client, refusal);
      inner.preConnect(client, packet, done);
    },
    authenticate(client, username, password, done) {
      const refusal = refusals.get(client);
      if (!refusal) return inner.authenticate(client, username, password, done);
      refusals.delete(client);
      onRefused(client, refusal);
      done(Object.assign(new Error(refusal.detail), { returnCode: IDENTIFIER_REJECTED }), false);
    },
  };
}
