import { isUtf8 } from 'node:buffer';

/**
 * Why `bytes` may not be an MQTT UTF-8 encoded string, or undefined when it may: it must be well-formed UTF-8
 * (no encoded surrogates U+D800–U+DFFF, no overlong forms) [MQTT-1.5.3-1] and must not contain U+0000
 * [MQTT-1.5.3-2]. Both checks are native scans of the bytes, cheap enough for every PUBLISH topic.
 */
export function utf8StringProblem(bytes: Uint8Array): string | undefined {
  if (bytes.indexOf(0) !== -1) return 'string contains U+0000 [MQTT-1.5.3-2]';
  if (!isUtf8(bytes)) return 'string is not well-formed UTF-8 [MQTT-1.5.3-1]';
  return undefined;
}
