import type { Client } from 'aedes';
import { parserOf, type MqttParserInternals, type PacketInParsing } from './aedes-internals.js';
import { utf8StringProblem } from './strict-strings.js';

/**
 * MQTT 3.1.1 rules that mqtt-packet 9's parser does not enforce, enforced in the parser of each client so that a
 * violation closes the connection as a parse error (logged by aedes as a client/connection error), before aedes
 * sees the packet:
 * - every UTF-8 string is well-formed and free of U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2] (and so [MQTT-3.1.3-4],
 *   [MQTT-3.1.3-10], [MQTT-3.1.3-11], [MQTT-3.3.2-1], [MQTT-3.8.3-1], [MQTT-3.10.3-1]);
 * - a CONNECT holds exactly the payload fields its flags announce [MQTT-3.1.2-11] [MQTT-3.1.2-18] [MQTT-3.1.2-20],
 *   no Will QoS 3 [MQTT-3.1.2-14], no password without a user name [MQTT-3.1.2-22];
 * - a CONNECT of an unsupported protocol level (mqtt-packet refuses any but 3, 4, 5 as unparseable) is handed to
 *   aedes with its level, so that aedes answers CONNACK 0x01 and closes [MQTT-3.1.2-2];
 * - an UNSUBSCRIBE carries at least one Topic Filter [MQTT-3.10.3-2].
 * The replacement methods are shared functions installed on the parser instance: no per-client closure.
 */
export function enforceProtocolChecks(client: Client): void {
  const parser = parserOf(client);
  original ??= originalMethods(parser);
  parser._parseString = parseStrictString;
  parser._emitError = emitFirstError;
  parser._parseConnect = parseCheckedConnect;
  parser._parseUnsubscribe = parseCheckedUnsubscribe;
}

type Parser = MqttParserInternals;

interface OriginalMethods {
  parseConnect: Parser['_parseConnect'];
  parseUnsubscribe: Parser['_parseUnsubscribe'];
  emitError: Parser['_emitError'];
}

let original: OriginalMethods | undefined;

function originalMethods(parser: Parser): OriginalMethods {
  const prototype = Object.getPrototypeOf(parser) as Parser;
  return { parseConnect: prototype._parseConnect, parseUnsubscribe: prototype._parseUnsubscribe, emitError: prototype._emitError };
}

function originals(): OriginalMethods {
  if (!original) throw new Error('protocol checks used before enforceProtocolChecks() installed them');
  return original;
}

/** mqtt-packet's `_parseString`, plus the UTF-8 checks; a bad string stops the packet with its own error. */
function parseStrictString(this: Parser): string | null {
  const length = this._parseNum();
  const end = this._pos + length;
  if (length === -1 || end > this._list.length || end > this.packet.length) return null;
  const bytes = this._list.slice(this._pos, end);
  this._pos = end;
  const problem = utf8StringProblem(bytes);
  if (problem !== undefined) {
    this._emitError(new Error(`${this.packet.cmd}: ${problem}`));
    return null;
  }
  return bytes.toString('utf8');
}

/** The caller of a failed `_parseString` reports a failure of its own; the first error is the one that says why. */
function emitFirstError(this: Parser, err: Error): void {
  if (this.error) return;
  originals().emitError.call(this, err);
}

function parseCheckedConnect(this: Parser): unknown {
  const header = readConnectHeader(this);
  if (header !== undefined && !SUPPORTED_LEVELS.has(header.level & 0x7f)) return passUnsupportedLevel(this, header);
  const result = originals().parseConnect.call(this);
  if (this.error) return result;
  const problem = connectProblem(this.packet, this._pos);
  if (problem !== undefined) return this._emitError(new Error(`connect: ${problem}`));
  return result;
}

function parseCheckedUnsubscribe(this: Parser): unknown {
  const result = originals().parseUnsubscribe.call(this);
  if (this.error) return result;
  if (this.packet.unsubscriptions?.length === 0) {
    return this._emitError(new Error('unsubscribe: no Topic Filter [MQTT-3.10.3-2]'));
  }
  return result;
}

/** Levels mqtt-packet parses (the bridge bit 0x80 aside): 3.1, 3.1.1 and 5 (which aedes refuses with 0x01). */
const SUPPORTED_LEVELS = new Set([3, 4, 5]);

interface ConnectHeader {
  protocolId: 'MQTT' | 'MQIsdp';
  level: number;
}

/** The protocol name and level of the CONNECT in the parser's buffer, when the name is an MQTT one. */
function readConnectHeader(parser: Parser): ConnectHeader | undefined {
  const list = parser._list;
  if (parser.packet.length < 2 || list.length < 2) return undefined;
  const nameLength = list.readUInt16BE(0);
  if (nameLength !== 4 && nameLength !== 6) return undefined;
  if (parser.packet.length < 3 + nameLength) return undefined;
  const name = list.slice(2, 2 + nameLength).toString('latin1');
  if (name !== 'MQTT' && name !== 'MQIsdp') return undefined;
  return { protocolId: name, level: list.readUInt8(2 + nameLength) };
}

/**
 * Lets a CONNECT of an unsupported level through as a packet with just that level, so aedes answers it like a
 * level 5 one: CONNACK 0x01 and close. Nothing else of it is read.
 */
function passUnsupportedLevel(parser: Parser, header: ConnectHeader): PacketInParsing {
  const packet = parser.packet;
  packet.protocolId = header.protocolId;
  packet.protocolVersion = header.level;
  packet.clientId = '';
  packet.clean = true;
  packet.keepalive = 0;
  return packet;
}

/** What makes a parsed CONNECT malformed beyond what mqtt-packet checks, or undefined. */
export function connectProblem(packet: PacketInParsing, bytesRead: number): string | undefined {
  if (bytesRead !== packet.length) {
    return `${packet.length - bytesRead} bytes after the payload fields the connect flags announce [MQTT-3.1.2-11] [MQTT-3.1.2-18] [MQTT-3.1.2-20]`;
  }
  if (packet.will !== undefined && packet.will.qos > 2) return 'Will QoS 3 [MQTT-3.1.2-14]';
  if (packet.protocolVersion !== 5 && packet.password !== undefined && packet.username === undefined) {
    return 'Password Flag 1 with User Name Flag 0 [MQTT-3.1.2-22]';
  }
  return undefined;
}
