// The bundle's entry: dist/ssm-proxy.cjs, required by bin/ssm-proxy.
import { main } from './loader.ts';

main();
