import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { ListenerConfig, TlsConfig } from '../config/types.js';
import { mqttWebSocketStream, selectMqttSubprotocol } from './websocket-stream.js';

/** What the broker knows about a connection before the first MQTT byte. */
export interface ConnectionInfo {
  listener: string;
  /** The listener is bound to a loopback address (local-only mode may allow anonymous clients there). */
  loopbackListener: boolean;
  remoteAddress: string;
  /** Common name of a client certificate that the TLS layer verified against the listener's CA. */
  verifiedCertCommonName?: string;
}

export type ConnectionHandler = (stream: Duplex, info: ConnectionInfo, request?: http.IncomingMessage) => void;

export interface RunningListener {
  readonly config: ListenerConfig;
  readonly address: AddressInfo;
  /** Stops accepting new connections; open ones are left to the broker. */
  close(): Promise<void>;
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export async function startListener(config: ListenerConfig, onConnection: ConnectionHandler): Promise<RunningListener> {
  const loopbackListener = isLoopbackHost(config.host);
  const info = (socket: net.Socket): ConnectionInfo => ({
    listener: config.name,
    loopbackListener,
    remoteAddress: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`,
    verifiedCertCommonName: verifiedCommonName(socket),
  });
  let server: net.Server;
  let wss: WebSocketServer | undefined;
  switch (config.protocol) {
    case 'mqtt':
      server = net.createServer({ noDelay: true }, (socket) => onConnection(socket, info(socket)));
      break;
    case 'mqtts':
      server = tls.createServer({ ...tlsOptions(config), noDelay: true }, (socket) => onConnection(socket, info(socket)));
      break;
    case 'ws':
    case 'wss': {
      server = config.protocol === 'ws' ? http.createServer() : https.createServer(tlsOptions(config));
      wss = new WebSocketServer({ server: server as http.Server, path: config.path, handleProtocols: selectMqttSubprotocol });
      wss.on('connection', (ws, req) => {
        req.socket.setNoDelay(true);
        onConnection(mqttWebSocketStream(ws), info(req.socket), req);
      });
      break;
    }
  }
  server.on('tlsClientError', () => { /* a failed TLS handshake only ends that socket */ });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`listener '${config.name}' (${config.protocol}) on ${config.host}:${config.port}: ${err.message}`)));
    server.listen(config.port, config.host, resolve);
  });
  return {
    config,
    address: server.address() as AddressInfo,
    // Stops accepting at once. Open connections are not waited for: the node drains and closes its clients after
    // this, and server.close()'s callback would wait for every client to go first.
    close: () => {
      wss?.close();
      server.close();
      return Promise.resolve();
    },
  };
}

function tlsOptions(config: ListenerConfig): tls.TlsOptions {
  const t = config.tls as TlsConfig;
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`listener '${config.name}': cannot read tls.${what} ${file}: ${(err as Error).message}`);
    }
  };
  return {
    cert: read(t.certFile, 'certFile'),
    key: read(t.keyFile, 'keyFile'),
    ca: t.caFile ? read(t.caFile, 'caFile') : undefined,
    requestCert: t.requestClientCert || t.requireClientCert,
    rejectUnauthorized: t.requireClientCert,
  };
}

function verifiedCommonName(socket: net.Socket): string | undefined {
  if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn || undefined;
}
