/** A buffer that is not a well-formed route-sync message; `path` says where (`ops.deltas[2].ops[5].filter`). */
export class CodecError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`malformed route-sync message at ${path}: ${reason}`);
    this.name = 'CodecError';
  }
}

/** A well-formed message that breaks the protocol, or a caller passing an invalid route. Nothing was applied. */
export class RouteSyncError extends Error {
  constructor(message: string, readonly peer?: string) {
    super(peer === undefined ? message : `route sync with ${peer}: ${message}`);
    this.name = 'RouteSyncError';
  }
}
