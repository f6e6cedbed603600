/**
 * The route-sync protocol messages. A *stream* carries one actor's view of routes to one peer: the sender opens it
 * with `init`, then sends sequenced `ops` and `snapshot` messages and unsequenced `heartbeat`s; the receiver
 * answers with `init_ack` and cumulative `ack`s. A connection between two nodes carries one stream each way.
 *
 * Every stream message names the stream by (sender incarnation, conn): `conn` grows at every (re)connect of the
 * sender, so a message that outlived its connection can never be taken for one of the current connection.
 */

export const PROTOCOL_VERSION = 1;

/** Route id of an ordinary route; other ids let one owner hold several routes on one filter. */
export const DEFAULT_ROUTE_ID = '';

export interface RouteSpec {
  filter: string;
  routeId: string;
}

export type RouteOpKind = 'add' | 'delete';

export interface RouteOp extends RouteSpec {
  op: RouteOpKind;
}

/** Where an actor's lane stands: every version of one incarnation is one exact route set. */
export interface LaneVersion {
  actor: string;
  incarnation: number;
  version: number;
}

export interface LaneRef {
  actor: string;
  incarnation: number;
}

/**
 * The changes that take a lane from version `base` to version `version`. Every route whose presence differs
 * between the two versions is in `ops`; a receiver applies a delta only when its lane is exactly at `base`.
 */
export interface LaneDelta {
  actor: string;
  incarnation: number;
  base: number;
  version: number;
  ops: RouteOp[];
}

export interface InitMessage {
  type: 'init';
  protocol: number;
  cluster: string;
  /** The sending actor (node or link agent) and its incarnation. */
  actor: string;
  incarnation: number;
  /** 'core', 'replicant', 'agent': the receiver's export policy may depend on it. */
  role: string;
  conn: number;
}

export type InitResult = 'ok' | 'wrong_cluster' | 'stale_incarnation' | 'unsupported_protocol';

export interface InitAckMessage {
  type: 'init_ack';
  /** Echo of the stream being acknowledged. */
  incarnation: number;
  conn: number;
  result: InitResult;
  /** The receiving actor. */
  cluster: string;
  actor: string;
  actorIncarnation: number;
  role: string;
  /** With `stale_incarnation`: the highest incarnation of the sender the receiver has seen. */
  knownIncarnation: number;
  /** Every lane the receiver holds: the sender resends what it lacks, or bootstraps it. */
  lanes: LaneVersion[];
}

export interface OpsMessage {
  type: 'ops';
  incarnation: number;
  conn: number;
  seq: number;
  deltas: LaneDelta[];
}

/** One chunk of a full lane snapshot; the receiver applies the snapshot atomically after the `last` chunk. */
export interface SnapshotMessage {
  type: 'snapshot';
  incarnation: number;
  conn: number;
  seq: number;
  lane: LaneVersion;
  part: number;
  last: boolean;
  routes: RouteSpec[];
}

/**
 * Liveness of the listed lanes (the sender's own, and lanes it relays). `afterSeq` is the last sequenced message
 * sent before it: once the receiver has processed exactly that far, a lane version ahead of its own means it
 * missed something and asks for a resync.
 */
export interface HeartbeatMessage {
  type: 'heartbeat';
  incarnation: number;
  conn: number;
  afterSeq: number;
  lanes: LaneVersion[];
}

export interface AckMessage {
  type: 'ack';
  incarnation: number;
  conn: number;
  /** Every sequenced message up to and including `seq` was processed. */
  seq: number;
  /** Lanes the receiver cannot follow from deltas: send a snapshot. */
  resync: LaneRef[];
  /** The receiver does not know this stream (it restarted, or init was lost): start over with `init`. */
  reinit: boolean;
}

export type SenderMessage = InitMessage | OpsMessage | SnapshotMessage | HeartbeatMessage;
export type ReceiverMessage = InitAckMessage | AckMessage;
export type SyncMessage = SenderMessage | ReceiverMessage;
export type SyncMessageType = SyncMessage['type'];
