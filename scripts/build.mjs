// Builds dist/: the application as code-split CommonJS files (dist/app) and the small
// loader that runs them through V8's code cache (dist/ssm-proxy.cjs, see src/loader).
// One bundle instead of hundreds of files from node_modules on every connection.
import { build, transform } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

const minify = !process.argv.includes('--no-minify'); // --no-minify keeps names readable in CPU profiles
rmSync('dist', { recursive: true, force: true });

// 1. The application, code-split: the AWS SDK sits behind import(), so it is not even
//    read for --help, --version or a usage error.
const app = await build({
  entryPoints: { 'ssm-proxy': 'src/cli/main.ts' },
  outdir: 'dist/app',
  outExtension: { '.js': '.cjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  // The AWS SDK ships ES module builds: named exports survive code splitting and tree-shake better.
  mainFields: ['module', 'main'],
  // ws would load the optional native bufferutil at its start (~5 ms) for the few frames
  // it sends itself (a close, pings): here its require() of it fails, and ws masks those
  // in JavaScript. Our own frames (src/transport/ws-frames.ts) load bufferutil from
  // node_modules at run time once a session moves bulk data.
  external: ['utf-8-validate'],
  plugins: [
    {
      name: 'ws-without-bufferutil',
      setup(b) {
        b.onResolve({ filter: /^bufferutil$/ }, () => ({ path: 'bufferutil', namespace: 'not-bundled' }));
        b.onLoad({ filter: /.*/, namespace: 'not-bundled' }, () => ({ contents: "throw new Error('bufferutil is loaded by src/transport/ws-frames.ts, not by ws');", loader: 'js' }));
      },
    },
  ],
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify,
  legalComments: 'none',
  logLevel: 'warning',
  write: false,
  metafile: true,
});

// Modules the application loads with the event loop turning between files (see
// Loader.loadInSteps): for each, the files its import() brings in, dependencies first.
const STEPPED = ['src/aws/sdk.ts'];
const steps = {};
for (const source of STEPPED) {
  const outputs = app.metafile.outputs;
  const entry = Object.keys(outputs).find((o) => outputs[o].entryPoint === source);
  if (!entry) throw new Error(`build: ${source} is not a chunk of its own; import() it somewhere, or drop it from STEPPED`);
  const order = [];
  const visit = (o) => {
    if (order.includes(o)) return;
    for (const i of outputs[o].imports) if (i.kind === 'import-statement' && !i.external) visit(i.path);
    order.push(o);
  };
  visit(entry);
  steps[source] = order.map((o) => relative(resolve('dist/app'), resolve(o)).split('\\').join('/'));
}

// 2. Each file to CommonJS: Node 20 caches bytecode only for scripts compiled by
//    vm.Script, not for ES modules. import() of a chunk becomes a require() the loader
//    serves; import.meta.url becomes the loader's __ssmUrl.
const id = createHash('sha256');
for (const file of [...app.outputFiles].sort((a, b) => a.path.localeCompare(b.path))) {
  const cjs = await transform(file.text, {
    format: 'cjs',
    target: 'node20',
    supported: { 'dynamic-import': false },
    define: { 'import.meta.url': '__ssmUrl' },
    minify,
    legalComments: 'none',
    logLevel: 'warning',
  });
  mkdirSync(dirname(file.path), { recursive: true });
  writeFileSync(file.path, cjs.code);
  id.update(relative(resolve('dist/app'), file.path)).update('\0').update(cjs.code).update('\0');
}

// 3. The loader, as CommonJS too: bin/ssm-proxy require()s it, so node never starts
//    its ES module loader (10-20 ms of every start). The build id names the cache
//    directory, so that each build keeps its own caches (the loader also checks every
//    cache file against a checksum of its source).
await build({
  entryPoints: { 'ssm-proxy': 'src/loader/entry.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify,
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: 'var __loaderUrl=require("node:url").pathToFileURL(__filename).href;' },
  define: { __SSM_BUILD_ID__: JSON.stringify(id.digest('hex').slice(0, 16)), __SSM_STEPS__: JSON.stringify(steps), 'import.meta.url': '__loaderUrl' },
});
