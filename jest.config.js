// Two tiers: `unit` is pure and fast; `integration` starts real processes (brokers, mosquitto, apiserver)
// from the compiled `dist/` tree, so `make build` must run first (the Makefile and .ci/run do that).
const tsJest = ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }];
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': tsJest },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
};
export default {
  // Per-project testTimeout is ignored by Jest 30; integration tests need the long one.
  testTimeout: 120000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/**/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/**/test/integration/**/*.test.ts', '<rootDir>/e2e/test/**/*.test.ts'] },
  ],
};
