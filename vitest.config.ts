import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // dist/ built once per run: tests that spawn the CLI run the compiled code, not tsx
    globalSetup: ['test/global-setup.ts'],
    // unhandled rejections fail the run (vitest's default); keep it explicit
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
