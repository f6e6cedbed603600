/** Runs a handshake state machine over a connection, with a deadline. */
import type { NodeIdentity, RefusalReason } from './codec.js';
import type { ConnectionEnd, FramedConnection } from './connection.js';
import { DialerHandshake, type AcceptorHandshake, type HandshakeStep, type RefusalOrigin } from './handshake.js';

/** A refusal (REJECT sent or received), or the handshake could not finish. */
export type HandshakeFailureReason = RefusalReason | 'timeout' | 'connection-lost';

export interface HandshakeFailure {
  reason: HandshakeFailureReason;
  detail: string;
  /** Who decided: `local` (this node refused / gave up) or `peer` (its REJECT arrived). */
  origin: RefusalOrigin;
}

export type HandshakeOutcome = { ok: true; peer: NodeIdentity } | { ok: false; failure: HandshakeFailure };

/**
 * Drives `machine` until it succeeds or fails. On success the connection is left without a handler (frames that
 * follow are held for the next owner); on failure it is ended — after the REJECT, if this side refused.
 */
export function authenticate(
  connection: FramedConnection,
  machine: DialerHandshake | AcceptorHandshake,
  timeoutMs: number,
): Promise<HandshakeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: HandshakeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome.ok) connection.setHandler(undefined);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      const failure: HandshakeFailure = { reason: 'timeout', detail: `no complete handshake within ${timeoutMs} ms`, origin: 'local' };
      settle({ ok: false, failure });
      connection.destroy({ code: 'handshake-timeout', detail: failure.detail });
    }, timeoutMs);
    timer.unref();

    const apply = (step: HandshakeStep): void => {
      for (const frame of step.send) connection.write(frame);
      if (!step.result) return;
      if (step.result.ok) {
        settle({ ok: true, peer: step.result.peer });
        return;
      }
      const { reason, detail, origin } = step.result.refusal;
      settle({ ok: false, failure: { reason, detail, origin } });
      connection.end({ code: origin === 'local' ? 'local-close' : 'peer-closed', detail: `handshake refused (${reason}): ${detail}` });
    };

    connection.setHandler({
      onFrame: (frame) => {
        if (!settled) apply(machine.onFrame(frame));
      },
      onEnd: (end: ConnectionEnd) => {
        settle({ ok: false, failure: endToFailure(end) });
      },
    });
    if (machine instanceof DialerHandshake) connection.write(machine.start());
  });
}

function endToFailure(end: ConnectionEnd): HandshakeFailure {
  if (end.code === 'codec-error') return { reason: 'protocol-error', detail: end.detail, origin: 'local' };
  if (end.code === 'handshake-timeout') return { reason: 'timeout', detail: end.detail, origin: 'local' };
  return { reason: 'connection-lost', detail: `${end.code}: ${end.detail}`, origin: 'local' };
}
