import { createHash } from 'node:crypto';
import { MAX_KEY_BYTES } from './engine.js';

// Key layout of the store (see README.md). Keys are UTF-8 strings ordered bytewise by the engine. Values carry
// every logical field too, so loading never parses a key: keys only need to be unique and ordered.
// MQTT forbids U+0000 in client identifiers and topics ([MQTT-1.5.3-2]), so it separates key parts safely.
const SEP = '\u0000';

export const PREFIX = {
  meta: 'm:',
  session: 'c:',
  subscription: 's:',
  outgoing: 'o:',
  incoming: 'i:',
  retained: 'r:',
  will: 'w:',
  area: 'a:',
  publish: 'p:',
} as const;

export const INCARNATION_KEY = `${PREFIX.meta}incarnation`;
/** Random id of this store, made when the store is created (or first opened by a version that has it). */
export const EPOCH_KEY = `${PREFIX.meta}epoch`;

/** A part longer than this is replaced by U+0001 + its SHA-256, keeping any key within the engine's limit. */
const MAX_PART_BYTES = 800;
/** Fixed width keeps numeric order equal to byte order (2^53 fits in 14 hex digits). */
const SEQ_WIDTH = 14;

function part(value: string): string {
  if (Buffer.byteLength(value) <= MAX_PART_BYTES) return value;
  return `\u0001${createHash('sha256').update(value).digest('hex')}`;
}

export const sessionKey = (clientId: string): string => `${PREFIX.session}${part(clientId)}`;
export const subscriptionKey = (clientId: string, topic: string): string => `${PREFIX.subscription}${part(clientId)}${SEP}${part(topic)}`;
export const outgoingKey = (clientId: string, seq: number): string =>
  `${PREFIX.outgoing}${part(clientId)}${SEP}${seq.toString(16).padStart(SEQ_WIDTH, '0')}`;
export const incomingKey = (clientId: string, messageId: number): string =>
  `${PREFIX.incoming}${part(clientId)}${SEP}${messageId.toString(16).padStart(4, '0')}`;
export const retainedKey = (topic: string): string => `${PREFIX.retained}${part(topic)}`;
export const willKey = (clientId: string): string => `${PREFIX.will}${part(clientId)}`;
export const publishKey = (publishId: string): string => `${PREFIX.publish}${part(publishId)}`;

export function areaPrefix(name: string): string {
  if (name.length === 0 || name.includes(SEP)) throw new Error(`invalid store area name ${JSON.stringify(name)}: must be non-empty without U+0000`);
  return `${PREFIX.area}${name}${SEP}`;
}

export function assertKeyFits(key: string): void {
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) throw new Error(`store key too long: ${bytes} bytes (limit ${MAX_KEY_BYTES}) for ${JSON.stringify(key.slice(0, 80))}...`);
}
