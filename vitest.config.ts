import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests share the machine's kernel; each file makes its own namespaces,
    // but running files one after another keeps timing-sensitive traffic checks honest.
    fileParallelism: false,
  },
});
