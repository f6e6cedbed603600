/** Why a `send()` failed. Every failure carries the peer's node id and a code the caller can branch on. */
export type SendFailureCode =
  /** The peer restarted (new incarnation): what it had not acknowledged is not resent to the new process. */
  | 'peer-restarted'
  /** The peer (same incarnation) no longer holds this link's stream, e.g. it dropped the link and re-created it. */
  | 'peer-session-lost'
  /** The link was removed by `removePeer()` / `close()`. */
  | 'link-closed'
  /** No link to that node id (it never connected and `ensurePeer` was not called). */
  | 'unknown-peer'
  /** Too many bytes already queued behind a full window. */
  | 'send-queue-full'
  /** Payload larger than the largest frame the link accepts. */
  | 'payload-too-large'
  | 'bad-channel';

export class SendFailure extends Error {
  override readonly name = 'SendFailure';
  constructor(readonly code: SendFailureCode, readonly peer: string, message: string) {
    super(message);
  }
}
