// Bundles src/main.ts into one executable file, dist/portmap (CommonJS, so it runs from any directory,
// with or without a package.json beside it). Modules reached through import() stay lazy in the bundle.
import { build } from 'esbuild';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'portmap');
mkdirSync(dirname(outfile), { recursive: true });

await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
// The repository's package.json says "type": "module"; the bundle is CommonJS wherever it is installed.
writeFileSync(join(dirname(outfile), 'package.json'), '{"type": "commonjs"}\n');
console.log(`built ${outfile}`);
