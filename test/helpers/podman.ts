/**
 * The container image built and run with Debian's podman, as test/integration/image.test.ts does
 * it on these machines: the runc runtime (podman's default crun refuses the VM's hybrid cgroups),
 * explicit ulimits (the VM refuses podman's defaults), the Docker format (OCI drops HEALTHCHECK), and
 * docker.io/library/node:20-slim from scripts/node-standin-image.sh (a real pull, or the stand-in).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
/** the tag the test builds; the image itself is run by its id, so parallel runs never swap images */
export const IMAGE_TAG = 'localhost/expeed-sync:test';
/** set on the test's builds, so that older ones nothing uses can be pruned */
export const IMAGE_LABEL = 'org.expeed-sync.test=image';
/** the global flags of every podman call */
const GLOBAL = ['--runtime', 'runc'];
/** what `podman run` needs on these VMs */
export const RUN_LIMITS = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];

export interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The tools the test needs, by name, that are not installed. */
export function missingTools(): string[] {
  return ['podman', 'runc', 'debootstrap', 'flock'].filter(
    (t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0,
  );
}

/** Runs a command to its end (killed after `timeoutMs`); never throws for a non-zero exit. */
export function exec(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `${cmd} ${args.join(' ')} did not finish within ${timeoutMs / 1000} s:\n${stdout.slice(-2000)}${stderr.slice(-2000)}`,
        ),
      );
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `podman --runtime runc ARGS`. */
export function podman(args: string[], timeoutMs?: number): Promise<Exec> {
  return exec('podman', [...GLOBAL, ...args], timeoutMs);
}

/** Like podman(), but a non-zero exit throws with its output. */
export async function podmanOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await podman(args, timeoutMs);
  if (r.code !== 0)
    throw new Error(`podman ${args.join(' ')} exited ${r.code}:\n${r.stdout.slice(-3000)}${r.stderr.slice(-3000)}`);
  return r.stdout;
}

/** docker.io/library/node:20-slim present: already there, pulled, or the stand-in made. Its output. */
export async function prepareBaseImage(timeoutMs: number): Promise<string> {
  const r = await exec('bash', [join(ROOT, 'scripts/node-standin-image.sh')], timeoutMs);
  if (r.code !== 0) throw new Error(`scripts/node-standin-image.sh exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r.stderr.trim();
}

/** `podman build --pull=never --network=host --format docker` of the Dockerfile as it is; the image id. */
export async function buildImage(timeoutMs: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'expeed-image-'));
  try {
    const iid = join(dir, 'iid');
    await podmanOk(
      [
        'build',
        '--pull=never',
        '--network=host',
        '--format',
        'docker',
        '--iidfile',
        iid,
        '--label',
        IMAGE_LABEL,
        '-t',
        IMAGE_TAG,
        ROOT,
      ],
      timeoutMs,
    );
    return readFileSync(iid, 'utf8')
      .trim()
      .replace(/^sha256:/, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
