/** The intra-cluster transport: see README.md in this directory. */
export { PROTOCOL_VERSION, CodecError, type NodeIdentity, type NodeRole, type RefusalReason } from './codec.js';
export { refusalMessage } from './handshake.js';
export type { HandshakeFailure, HandshakeFailureReason } from './authenticate.js';
export { SendFailure, type SendFailureCode } from './errors.js';
export {
  Channel, Delivery, PeerLink, DEFAULT_LINK_OPTIONS,
  type ConnectedPeer, type Direction, type Disconnection, type LinkStats, type PeerInfo, type PeerLinkOptions, type SessionState,
} from './peer-link.js';
export {
  ClusterTransport, DialFailure, parseClusterAddress,
  type ClusterTransportOptions, type HandshakeFailureEvent, type TransportEvents, type TransportFailureReason, type TransportStats,
} from './server.js';
export { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { readClusterSecret, MIN_SECRET_BYTES } from './secret.js';
