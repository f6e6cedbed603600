/** The scenario's environment variables (shared by `make e2e` and the Jest test). */
import { DRILLS, type DrillTiming } from './drills.js';

export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

export function timingFromEnv(defaults: DrillTiming): DrillTiming {
  const soak = process.env.MERIDIAN_E2E_SOAK_SECONDS ? envNumber('MERIDIAN_E2E_SOAK_SECONDS', 0) : undefined;
  if (soak !== undefined) return { ...defaults, baselineSeconds: soak, leadMs: defaults.leadMs * 4, tailMs: defaults.tailMs * 4, drainTimeoutMs: defaults.drainTimeoutMs * 2 };
  return { ...defaults, baselineSeconds: envNumber('MERIDIAN_E2E_BASELINE_SECONDS', defaults.baselineSeconds) };
}

export function drillsFromEnv(): typeof DRILLS {
  const raw = process.env.MERIDIAN_E2E_DRILLS;
  if (raw === undefined) return DRILLS;
  if (raw.trim() === '' || raw.trim() === 'none') return [];
  const ids = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = ids.filter((id) => !DRILLS.some((d) => d.id === id));
  if (unknown.length > 0) throw new Error(`MERIDIAN_E2E_DRILLS: unknown drill(s) ${unknown.join(', ')} (known: ${DRILLS.map((d) => d.id).join(', ')})`);
  return DRILLS.filter((d) => ids.includes(d.id));
}

