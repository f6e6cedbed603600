import { deserialize, serialize } from 'node:v8';

// Structured-clone encoding keeps Buffer vs string payloads, undefined fields and MQTT 5 properties intact.
export const encode = (value: unknown): Buffer => serialize(value);
export const decode = <T>(bytes: Buffer): T => deserialize(bytes) as T;
